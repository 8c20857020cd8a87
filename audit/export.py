"""Audit events as CSV or JSON lines, streamed row by row for large exports."""

import csv
import io
import json
from collections.abc import Iterable, Iterator

from audit.log import as_mirror_line
from audit.models import AuditEvent

CSV_COLUMNS = [
    "sequence",
    "time_utc",
    "action",
    "outcome",
    "actor",
    "actor_id",
    "target",
    "source_ip",
    "user_agent",
    "request_id",
    "details",
    "hash",
]
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# Spreadsheet programs run cells that start with these as formulas (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def _csv_row(event: AuditEvent) -> list[str]:
    return [
        _cell(value)
        for value in (
            event.sequence,
            event.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            event.action,
            event.outcome,
            event.actor_username,
            event.actor_id,
            event.target,
            event.source_ip,
            event.user_agent,
            event.request_id,
            json.dumps(event.details, sort_keys=True, ensure_ascii=False),
            event.hash,
        )
    ]


def csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow(_csv_row(event))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def jsonl_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield as_mirror_line(event) + "\n"


def lines(events: Iterable[AuditEvent], export_format: str) -> Iterator[str]:
    if export_format == "csv":
        return csv_lines(events)
    if export_format == "jsonl":
        return jsonl_lines(events)
    raise ValueError(f"Unknown export format {export_format!r}; use csv or jsonl.")
