from django.core.management.base import BaseCommand

from audit.export import lines
from audit.log import record
from audit.management.commands.audit_purge import utc_date
from audit.models import AuditEvent


class Command(BaseCommand):
    help = "Write audit events, oldest first, as JSON lines or CSV (for a security log system)."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="YYYY-MM-DD (UTC): events from this day on")
        parser.add_argument("--until", help="YYYY-MM-DD (UTC): events before this day")
        parser.add_argument("--after-sequence", type=int, help="events after this sequence")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args, since, until, after_sequence, format, output, **options):
        events = AuditEvent.objects.order_by("sequence")
        filters = {}
        if since:
            events = events.filter(created_at__gte=utc_date(since))
            filters["since"] = since
        if until:
            events = events.filter(created_at__lt=utc_date(until))
            filters["until"] = until
        if after_sequence is not None:
            events = events.filter(sequence__gt=after_sequence)
            filters["after_sequence"] = after_sequence
        # Taken before the export's own event is added, so that event is not in the file.
        last = events.values_list("sequence", flat=True).last()
        if last is not None:
            events = events.filter(sequence__lte=last)
        rows = events.count()
        record("audit.exported", format=format, filters=filters, rows=rows, via="command")
        exported = lines(events.iterator(chunk_size=2000), format)
        if not output:
            for line in exported:
                self.stdout.write(line, ending="")
            return
        with open(output, "w", encoding="utf-8", newline="") as stream:
            stream.writelines(exported)
        self.stderr.write(f"Wrote {rows} events to {output}.")
