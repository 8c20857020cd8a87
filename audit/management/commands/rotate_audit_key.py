from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit import chain
from audit.log import record
from core.keys import (
    AUDIT_HMAC_KEY_FILE,
    KeyFileError,
    key_file_lock,
    new_key,
    read_key_file,
    replace_keys_and_record,
    rotatable_key_file,
)


class Command(BaseCommand):
    help = (
        "Start signing the audit log with a new key. Puts a new key first in "
        "var/keys/audit_hmac_key (the older keys stay below it: they verify the events they "
        "signed) and records a keys.rotated checkpoint signed with the old key, naming both "
        "key ids. Restart every web process and worker afterwards."
    )

    def handle(self, *args, **options):
        try:
            path = rotatable_key_file(settings.VAR_DIR, AUDIT_HMAC_KEY_FILE)
            with key_file_lock(path):
                current = read_key_file(path)
                if current[0] != settings.AUDIT_HMAC_KEYS[0]:
                    raise CommandError(
                        f"{path} changed after this command loaded it (another rotation?): "
                        "nothing was changed; run the command again."
                    )
                checkpoint, new_id = self._rotate(path, current)
        except KeyFileError as exc:
            raise CommandError(f"The audit key was not rotated: {exc}") from None
        except (DatabaseError, OSError) as exc:
            raise CommandError(
                f"The audit key was not rotated ({exc}); the key file and the audit log are "
                "as they were. Fix the cause and run the command again."
            ) from None
        old_id = chain.key_id(current[0])
        self.stdout.write(
            self.style.SUCCESS(
                f"Rotated the audit key: new events are signed with key {new_id}. The checkpoint "
                f"#{checkpoint.sequence}, signed with the old key {old_id}, closes its period."
            )
        )
        self.stdout.write(
            f"{path} now holds {len(current) + 1} keys, newest first. Never remove the old ones "
            "while events they signed exist: those events could no longer be verified."
        )
        self.stdout.write(
            "Restart every web process and inference worker now, on every host (copy the key "
            "file to the other hosts first). Until a process restarts it signs with the old "
            "key; audit_verify accepts those events and lists them as a warning."
        )

    @staticmethod
    def _rotate(path, current: list[str]):
        """Record the checkpoint with the old key and write the new key file, both or neither.

        The checkpoint holds the chain's append lock until the new file is in place, so this
        process appends nothing between the two.
        """
        new = new_key(AUDIT_HMAC_KEY_FILE)
        new_id = chain.key_id(new)
        checkpoint = replace_keys_and_record(
            path,
            [new, *current],
            current,
            lambda: record(
                chain.ROTATION_ACTION,
                kind=chain.ROTATION_KIND,
                old_key_id=chain.key_id(current[0]),
                new_key_id=new_id,
                key_count=len(current) + 1,
            ),
        )
        return checkpoint, new_id
