from django.core.management.base import BaseCommand

from accounts.erasure import reapply_erasures


class Command(BaseCommand):
    help = (
        "After restoring a database backup: erase again what was erased after that backup was "
        "made, as the key store noted it (users, conversations). Their content already reads "
        "as erased, since their keys are gone; this removes the rows and empties the accounts "
        "too, each recorded as it was the first time. Safe to run again."
    )

    def handle(self, *args, **options):
        result = reapply_erasures()
        scopes = ", ".join(f"{count} {kind}s" for kind, count in result.scopes.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Erasures re-applied: {result.users} users"
                + (f", {scopes}" if scopes else "")
                + "."
            )
        )
