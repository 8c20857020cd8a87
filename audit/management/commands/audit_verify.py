from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.chain import key_id, verify
from audit.log import record
from audit.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Walk the audit chain and check every event against the audit key that signed it. "
        "Prints each audit key's period (its first and last event) and warns about events "
        "signed with a key after its rotation. Exits 1 naming the first event that is "
        "missing, altered, out of order or signed with a key that is no longer configured."
    )

    def handle(self, *args, **options):
        verdict = verify()
        record(
            "audit.verified",
            outcome=AuditEvent.Outcome.SUCCESS if verdict.intact else AuditEvent.Outcome.FAILURE,
            checked=verdict.checked,
            first_bad_sequence=verdict.sequence,
            warning_count=len(verdict.warnings),
            via="command",
        )
        self._print_key_periods(verdict)
        if not verdict.intact:
            raise CommandError(verdict.summary())
        self.stdout.write(self.style.SUCCESS(verdict.summary()))

    def _print_key_periods(self, verdict) -> None:
        signing = key_id(settings.AUDIT_HMAC_KEYS[0])
        self.stdout.write("Audit keys, oldest first:")
        with_events = set()
        for period in verdict.periods:
            with_events.add(period.key_id)
            current = " It signs new events." if period.key_id == signing else ""
            self.stdout.write(f"  {period.describe()}.{current}")
        for key in settings.AUDIT_HMAC_KEYS:
            kid = key_id(key)
            if kid in with_events:
                continue
            if kid == signing:
                self.stdout.write(f"  key {kid}: no events yet. It signs new events.")
            elif verdict.intact:
                self.stdout.write(
                    f"  key {kid}: no remaining events (docs/key-rotation.md says when it "
                    "may leave the key file)."
                )
