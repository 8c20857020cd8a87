from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.erasure import ErasureRefused, erase_user


class Command(BaseCommand):
    help = (
        "Erase a user: every conversation (and anything else they stored) is deleted and their "
        "data keys destroyed, so that no database backup can show it again; the account stays "
        "as an empty, disabled shell named erased-<id>. Refused while a legal hold is in place. "
        "Recorded in the audit log as user.erased with the reason. This cannot be undone."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="the user to erase")
        parser.add_argument(
            "--reason",
            required=True,
            help="why (the request or ticket it answers); recorded in the audit log",
        )

    def handle(self, *args, username, reason, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(
                f"There is no user {username!r}: check the spelling (usernames are "
                "case-sensitive) or the admin's user list."
            ) from None
        try:
            erased = erase_user(actor=None, user=user, reason=reason)
        except ErasureRefused as exc:
            raise CommandError(str(exc)) from None
        listed = ", ".join(
            f"{count} {kind.replace('_', ' ')}"
            for kind, count in erased.items()
            if kind != "data_keys"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased {username}: {listed or 'nothing stored'}; destroyed "
                f"{erased['data_keys']} data keys. The account is now erased-{user.pk}, "
                "disabled."
            )
        )
        self.stdout.write(
            "Database backups made before now show this user's content as erased once restored "
            "with today's keys. Key archives made before now still hold the destroyed keys: "
            "they expire with the key archive retention (docs/backup.md)."
        )
