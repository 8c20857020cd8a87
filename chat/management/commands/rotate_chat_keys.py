from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import TOTPDevice
from audit.log import record
from chat.models import Conversation, Message

BATCH = 500


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value (conversation titles, message contents, TOTP keys) "
        "under the newest key of the keyring, in batches of 500 rows. Put the new key first in "
        "CHAT_ENCRYPTION_KEYS (or var/keys/chat_keyring) and keep the old ones until this has finished; "
        "it is safe to interrupt and run again."
    )

    def handle(self, *args, **options):
        totals = {
            "conversations": self._rotate(Conversation, "title"),
            "messages": self._rotate(Message, "content"),
            "totp_devices": self._rotate(TOTPDevice, "key"),
        }
        record("keys.rotated", keyring="chat", rows=totals)
        self.stdout.write(
            self.style.SUCCESS(
                "Re-encrypted under the newest key: "
                + ", ".join(f"{count} {label.replace('_', ' ')}" for label, count in totals.items())
                + ". Older keys can leave the keyring once every server has the new one."
            )
        )

    @staticmethod
    def _rotate(model, field: str) -> int:
        """Load (decrypting with any key of the ring) and save (encrypting with the first)."""
        done = 0
        last_pk = None
        while True:
            rows = model.objects.order_by("pk")
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            batch = list(rows.only("pk", field)[:BATCH])
            if not batch:
                return done
            with transaction.atomic():
                for row in batch:
                    row.save(update_fields=[field])
            done += len(batch)
            last_pk = batch[-1].pk
