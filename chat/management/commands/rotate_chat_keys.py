from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, models, transaction
from django.db.models.functions import Cast

from audit.key_rotation import keep_only_newest
from audit.log import record
from core import crypto, datakeys
from core.keys import (
    CHAT_KEYRING_FILE,
    KeyFileError,
    key_file_lock,
    key_id,
    new_key,
    read_key_file,
    replace_keys_and_record,
    rotatable_key_file,
)

BATCH = 500
KIND = "chat"


def _id(key: str) -> str:
    return key_id(KIND, key)


class Command(BaseCommand):
    help = (
        "Rotate the chat keyring (var/keys/chat_keyring or CHAT_ENCRYPTION_KEYS), in three "
        "runs with restarts between them: --add-key puts a new key first; then, once every "
        "process has restarted, a run without options re-encrypts every encrypted column (conversation "
        "titles, messages, authenticator keys, ...) and rewraps every per-user data key under the first key, in batches of 500 rows (safe to interrupt "
        "and run again); --drop-old then removes the older keys, after checking that no row "
        "still needs them."
    )

    def add_arguments(self, parser):
        steps = parser.add_mutually_exclusive_group()
        steps.add_argument(
            "--add-key",
            action="store_true",
            help="put a new key first in the keyring file; restart every process afterwards",
        )
        steps.add_argument(
            "--drop-old",
            action="store_true",
            help="remove every key but the first, once nothing is encrypted under them",
        )

    def handle(self, *args, add_key, drop_old, **options):
        try:
            if add_key or drop_old:
                path = rotatable_key_file(settings.VAR_DIR, CHAT_KEYRING_FILE)
                with key_file_lock(path):
                    current = read_key_file(path)
                    if add_key:
                        self._add_key(path, current)
                    else:
                        self._drop_old(path, current)
            else:
                self._re_encrypt()
        except KeyFileError as exc:
            raise CommandError(f"The chat keyring was not changed: {exc}") from None
        except crypto.DecryptionError as exc:
            raise CommandError(str(exc)) from None
        except (DatabaseError, OSError) as exc:
            raise CommandError(
                f"The chat keyring rotation stopped ({exc}). Fix the cause and run the same "
                "command again: every step is safe to repeat."
            ) from None

    def _add_key(self, path, current: list[str]) -> None:
        new = new_key(CHAT_KEYRING_FILE)
        replace_keys_and_record(
            path,
            [new, *current],
            current,
            lambda: record(
                "keys.rotated",
                kind=KIND,
                step="add_key",
                old_key_id=_id(current[0]),
                new_key_id=_id(new),
                key_count=len(current) + 1,
            ),
        )
        self.stdout.write(
            self.style.SUCCESS(f"Added chat key {_id(new)} first in {path}; nothing re-encrypted.")
        )
        self.stdout.write(
            "Copy the keyring file to every host, restart every web process and inference "
            "worker (all of them together when REDIS_URL is set), then run "
            "`manage.py rotate_chat_keys` to re-encrypt the stored data under the new key."
        )

    def _re_encrypt(self) -> None:
        totals = {
            label: self._rotate(model, field) for model, field, label in crypto.encrypted_columns()
        }
        rewrapped = datakeys.rewrap_all()
        record(
            "keys.rotated",
            kind=KIND,
            step="re_encrypt",
            new_key_id=_id(settings.CHAT_KEYRING[0]),
            rows=totals,
            data_key_count=rewrapped,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted under the newest key {_id(settings.CHAT_KEYRING[0])}: "
                + ", ".join(f"{count} {label.replace('_', ' ')}" for label, count in totals.items())
                + f"; rewrapped {rewrapped} data keys."
            )
        )
        self.stdout.write(
            "Older keys may now leave the keyring: `manage.py rotate_chat_keys --drop-old`."
        )

    def _drop_old(self, path, current: list[str]) -> None:
        if len(current) == 1:
            self.stdout.write(f"{path} holds one key only; nothing to drop.")
            return
        newest = Fernet(current[0])
        pending = {
            label: count
            for model, field, label in crypto.encrypted_columns()
            if (count := self._rows_not_under(newest, model, field))
        }
        if unwrapped := datakeys.count_not_wrapped_under(newest):
            pending["data keys"] = unwrapped
        if pending:
            listed = ", ".join(
                f"{count} {label.replace('_', ' ')}" for label, count in pending.items()
            )
            raise CommandError(
                f"Not dropping any key: {listed} are still encrypted under an older key. Run "
                "`manage.py rotate_chat_keys` (after every process has restarted with the "
                "new key first), then --drop-old again."
            )
        dropped = keep_only_newest(path, current, KIND)
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed the chat keys {', '.join(_id(key) for key in dropped)}; {path} keeps "
                f"only key {_id(current[0])}. Keep the removed keys with your old backups: "
                "a database backup taken before the re-encryption needs them."
            )
        )
        self.stdout.write("Copy the keyring file to every host and restart every process.")

    @staticmethod
    def _rotate(model, field: str) -> int:
        """Load (decrypting with any key of the ring) and save (encrypting with the first, or
        sealing under the row's data key: what older versions left under the keyring moves)."""
        related = model._meta.get_field(field).key_related
        done = 0
        last_pk = None
        while True:
            rows = model.objects.order_by("pk")
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            rows = rows.select_related(*related) if related else rows.only("pk", field)
            batch = list(rows[:BATCH])
            if not batch:
                return done
            with transaction.atomic():
                for row in batch:
                    row.save(update_fields=[field])
            done += len(batch)
            last_pk = batch[-1].pk

    @staticmethod
    def _rows_not_under(newest: Fernet, model, field: str) -> int:
        """How many stored values the newest key alone cannot decrypt (values sealed under a
        data key do not need the keyring; their wrapped keys are counted apart)."""
        # Cast to a plain text column: the stored token, without the field's decryption.
        tokens = model.objects.order_by("pk").annotate(
            stored=Cast(field, output_field=models.TextField())
        )
        pending = 0
        last_pk = None
        while True:
            rows = tokens if last_pk is None else tokens.filter(pk__gt=last_pk)
            batch = list(rows.values_list("pk", "stored")[:BATCH])
            if not batch:
                return pending
            for _, token in batch:
                if token is None or datakeys.is_sealed(token):
                    continue
                try:
                    newest.decrypt(token.encode("ascii"))
                except InvalidToken:
                    pending += 1
            last_pk = batch[-1][0]
