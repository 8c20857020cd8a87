import datetime

from django.core.management.base import BaseCommand, CommandError

from audit.log import purge
from audit.models import AuditEvent


def utc_date(text: str) -> datetime.datetime:
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--before {text!r} is not a date such as 2025-01-31.") from None
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


class Command(BaseCommand):
    help = (
        "Remove audit events older than a date (UTC midnight) and leave a checkpoint event, "
        "so that the remaining chain still verifies. The purge is itself audited."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, help="YYYY-MM-DD; older events go")
        parser.add_argument(
            "--dry-run", action="store_true", help="only say how many events would go"
        )

    def handle(self, *args, before, dry_run, **options):
        cutoff = utc_date(before)
        if cutoff > datetime.datetime.now(datetime.UTC):
            raise CommandError("--before is in the future; that would remove today's events.")
        doomed = AuditEvent.objects.filter(created_at__lt=cutoff).count()
        if dry_run:
            self.stdout.write(f"{doomed} events are older than {cutoff:%Y-%m-%d}; none removed.")
            return
        result = purge(cutoff)
        if result.removed == 0:
            self.stdout.write(f"No events older than {cutoff:%Y-%m-%d}; checkpoint recorded.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Removed {result.removed} events up to #{result.last_removed_sequence}; "
                "the checkpoint keeps the remaining chain verifiable."
            )
        )
