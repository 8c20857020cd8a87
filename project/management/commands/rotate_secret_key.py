from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit.key_rotation import keep_only_newest
from audit.log import record
from core.keys import (
    SECRET_KEY_FILE,
    KeyFileError,
    key_file_lock,
    key_id,
    new_key,
    read_key_file,
    replace_keys_and_record,
    rotatable_key_file,
)

KIND = "secret_key"


def _id(key: str) -> str:
    return key_id(KIND, key)


class Command(BaseCommand):
    help = (
        "Put a new Django secret key first in var/keys/django_secret_key and keep the one in "
        "use as its fallback (SECRET_KEY_FALLBACKS), so that sessions and signed values "
        "survive. With --drop-old, remove the fallbacks once sessions have turned over. "
        "Restart every web process afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--drop-old",
            action="store_true",
            help="keep only the first key: sessions still signed with an older one end",
        )

    def handle(self, *args, drop_old, **options):
        try:
            path = rotatable_key_file(settings.VAR_DIR, SECRET_KEY_FILE)
            with key_file_lock(path):
                current = read_key_file(path)
                if drop_old:
                    self._drop_old(path, current)
                else:
                    self._rotate(path, current)
        except KeyFileError as exc:
            raise CommandError(f"The secret key was not changed: {exc}") from None
        except (DatabaseError, OSError) as exc:
            raise CommandError(
                f"The secret key was not changed ({exc}); the key file and the audit log are "
                "as they were. Fix the cause and run the command again."
            ) from None

    def _rotate(self, path, current: list[str]) -> None:
        new = new_key(SECRET_KEY_FILE)
        # The key in use becomes the only fallback; older fallbacks had a rotation's time to go.
        dropped = current[1:]
        replace_keys_and_record(
            path,
            [new, current[0]],
            current,
            lambda: record(
                "keys.rotated",
                kind=KIND,
                step="new_key",
                old_key_id=_id(current[0]),
                new_key_id=_id(new),
                dropped_key_ids=[_id(key) for key in dropped],
            ),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Rotated the Django secret key: {path} now starts with key {_id(new)}, and the "
                f"previous key {_id(current[0])} stays as its fallback."
            )
        )
        if dropped:
            listed = ", ".join(_id(key) for key in dropped)
            self.stdout.write(f"Older fallbacks removed: {listed}.")
        self.stdout.write(
            "Restart every web process now (copy the key file to the other web hosts first); "
            "signed-in users stay signed in. Once every session has turned over "
            f"({settings.SESSION_ABSOLUTE_LIFETIME // 3600} hours, SESSION_ABSOLUTE_LIFETIME), "
            "run `manage.py rotate_secret_key --drop-old` and restart them again."
        )

    def _drop_old(self, path, current: list[str]) -> None:
        if len(current) == 1:
            self.stdout.write(f"{path} holds no fallback key; nothing to drop.")
            return
        dropped = keep_only_newest(path, current, KIND)
        listed = ", ".join(_id(key) for key in dropped)
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed the fallback keys {listed}; {path} keeps only key {_id(current[0])}."
            )
        )
        self.stdout.write(
            "Restart every web process now (copy the key file to the other web hosts first). "
            "Sessions and links still signed with a removed key stop working."
        )
