from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from project.backup.errors import BackupError
from project.backup.flow import record_failure, record_restore, restore
from project.backup.keyfiles import describe_key_restore


class Command(BaseCommand):
    help = (
        "Put back a database archive written by `manage.py backup` (and, with --keys, its key "
        "archive), then check that the keyring opens the stored data and that the audit "
        "chain verifies. Stop the web processes and inference workers first."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="a chat-db-<time>.tar file")
        parser.add_argument(
            "--keys",
            type=Path,
            default=None,
            metavar="KEY_ARCHIVE",
            help="a chat-keys-<time>.tar file to put back into VAR_DIR/keys as well",
        )
        parser.add_argument(
            "--yes",
            "--force",
            dest="yes",
            action="store_true",
            help="replace a database that holds data, and key files that hold other keys",
        )

    def handle(self, *args, archive, keys, yes, **options):
        try:
            result = restore(archive, key_archive_path=keys, overwrite=yes, say=self.stdout.write)
        except BackupError as exc:
            record_failure("backup.restored", str(exc))
            raise CommandError(str(exc)) from None
        if result.keys is not None:
            for line in describe_key_restore(result.keys):
                self.stdout.write(line)
        if result.applied_migrations:
            self.stdout.write(
                f"Applied {len(result.applied_migrations)} migrations that the archive predates."
            )
        for line in result.checks:
            self.stdout.write(line)
        record_restore(result, keys)
        if result.problems:
            raise CommandError(
                "The restore check failed: "
                + " ".join(result.problems)
                + f" (recorded as audit event #{result.event_sequence})."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restore complete; recorded as audit event #{result.event_sequence} "
                "(backup.restored)."
            )
        )
