from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api import services
from api.models import SCOPES


def active_user(username: str):
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"There is no user {username!r}; check the spelling.") from None


class Command(BaseCommand):
    help = (
        "Make a personal API token for USER and print it once, as the last line. The user "
        "must be active and have set up two-step verification."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument("--days", type=int, default=None, help="How long it lasts.")
        parser.add_argument(
            "--scopes", default=",".join(SCOPES), help=f"Comma-separated: {', '.join(SCOPES)}."
        )

    def handle(self, *args, username, name, days, scopes, **options):
        user = active_user(username)
        if not user.is_active:
            raise CommandError(f"{username!r} is deactivated; a token would not work.")
        if not services.has_second_factor(user):
            raise CommandError(
                f"{username!r} has not set up two-step verification; every token needs a "
                "second factor behind it. Ask them to sign in once first."
            )
        try:
            token, text = services.create_api_token(
                actor=None, user=user, name=name, days=days, scopes=scopes
            )
        except services.TokenError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Token {token.prefix}… ({token.name}) for {username}, scopes "
            f"{token.scopes}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC. It is shown "
            "only now:"
        )
        self.stdout.write(text)
