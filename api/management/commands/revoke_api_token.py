from django.core.management.base import BaseCommand, CommandError

from api import services
from api.management.commands.create_api_token import active_user


class Command(BaseCommand):
    help = "Revoke USER's live API token named NAME."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("name")

    def handle(self, *args, username, name, **options):
        user = active_user(username)
        token = services.live_tokens_of(user).filter(name=name).first()
        if token is None:
            raise CommandError(f"{username!r} has no live token named {name!r}.")
        services.revoke_api_token(actor=None, token=token, reason="by_operator")
        self.stdout.write(f"Revoked {token.prefix}… ({token.name}) of {username}.")
