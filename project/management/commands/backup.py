from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.log import record
from project.backup.errors import BackupError
from project.backup.flow import backup, record_failure


class Command(BaseCommand):
    help = (
        "Write a consistent archive of the database and, as a separate file, an archive of "
        "the key files (mode 0600). Keep them apart: the database archive is unreadable "
        "without the keys. docs/backup.md describes both."
    )

    def add_arguments(self, parser):
        default = settings.VAR_DIR / "backups"
        parser.add_argument(
            "--output",
            type=Path,
            default=default,
            metavar="DIR",
            help=f"directory for the database archive (default: {default})",
        )
        parser.add_argument(
            "--keys-output",
            type=Path,
            default=default,
            metavar="DIR",
            help="directory for the key archive, ideally on other storage (default: the same)",
        )
        parser.add_argument(
            "--no-keys",
            action="store_true",
            help="write only the database archive (the keys are backed up some other way)",
        )

    def handle(self, *args, output, keys_output, no_keys, **options):
        try:
            result = backup(output_dir=output, keys_output_dir=keys_output, with_keys=not no_keys)
        except BackupError as exc:
            record_failure("backup.created", str(exc))
            raise CommandError(str(exc)) from None
        archives = [result.database_archive]
        size = result.database_archive.stat().st_size
        self.stdout.write(
            f"Database archive: {result.database_archive} ({result.vendor}, {size} bytes, "
            f"sha256 {result.database_sha256}). It holds no key."
        )
        if result.key_archive is not None:
            archives.append(result.key_archive)
            self.stdout.write(
                f"Key archive: {result.key_archive} ({', '.join(result.key_files)} and "
                f"{result.data_key_count} data keys; mode 0600). Keep it briefly: an erased "
                "user's or conversation's data key lives on in every key archive made before "
                "the erasure."
            )
        elif no_keys:
            self.stdout.write(
                "No key archive (--no-keys): back up the keys in "
                f"{settings.VAR_DIR / 'keys'} some other way."
            )
        for variable in result.from_environment:
            self.stdout.write(
                f"{variable} comes from the environment, so it is not in the key archive: "
                "back it up where it is kept."
            )
        record(
            "backup.created",
            vendor=result.vendor,
            archives=[path.name for path in archives],
            database_sha256=result.database_sha256,
            size_bytes=size,
            not_archived=result.from_environment,
        )
        if result.key_archive is not None:
            self.stdout.write(
                self.style.SUCCESS(
                    "Backup complete. Store the key archive apart from the database archive: "
                    "without it the database archive cannot be read, and with it anyone can "
                    "read every conversation."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS("Backup complete."))
