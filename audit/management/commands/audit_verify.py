from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify
from audit.log import record
from audit.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Walk the audit chain and check every event against the audit key. Exits 1 naming "
        "the first event that is missing, altered or out of order."
    )

    def handle(self, *args, **options):
        verdict = verify()
        record(
            "audit.verified",
            outcome=AuditEvent.Outcome.SUCCESS if verdict.intact else AuditEvent.Outcome.FAILURE,
            checked=verdict.checked,
            first_bad_sequence=verdict.sequence,
            via="command",
        )
        if not verdict.intact:
            raise CommandError(verdict.summary())
        self.stdout.write(self.style.SUCCESS(verdict.summary()))
