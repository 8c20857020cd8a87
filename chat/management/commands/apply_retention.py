from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from chat.retention import DEFAULT_BATCH, apply_retention


class Command(BaseCommand):
    help = (
        "Erase conversations older than their retention period (CHAT_RETENTION_DAYS, "
        "CHAT_RETENTION_GROUP_DAYS), data keys included, except those of users under a legal "
        "hold. Works in batches, each committed and recorded (retention.applied) on its own: "
        "safe to interrupt and run again. Run daily (deploy/systemd/llm-chat-retention.timer)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH,
            help=f"conversations erased per transaction (default {DEFAULT_BATCH})",
        )
        parser.add_argument(
            "--max-batches",
            type=int,
            default=None,
            help="stop after this many batches (default: until nothing is due)",
        )

    def handle(self, *args, batch_size, max_batches, **options):
        if batch_size < 1 or (max_batches is not None and max_batches < 1):
            raise CommandError("--batch-size and --max-batches must be whole numbers from 1 up.")
        if not settings.CHAT_RETENTION_DAYS and not any(
            settings.CHAT_RETENTION_GROUP_DAYS.values()
        ):
            self.stdout.write(
                "No retention period is set (CHAT_RETENTION_DAYS=0 and no group period): "
                "conversations are kept until their owners delete them."
            )
        try:
            result = apply_retention(
                batch_size=batch_size,
                max_batches=max_batches,
                on_batch=lambda conversations, messages: self.stdout.write(
                    f"Erased {conversations} conversations ({messages} messages)."
                ),
            )
        except DatabaseError as exc:
            raise CommandError(
                f"Retention stopped ({exc}). What was erased before is committed and recorded; "
                "fix the cause and run the command again to carry on."
            ) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Retention applied: {result.conversations} conversations ({result.messages} "
                f"messages) erased in {result.batches} batches; {result.held} kept under a "
                "legal hold."
            )
        )
        if not result.done:
            self.stdout.write("More conversations are due: run the command again to carry on.")
