"""Log lines for machines: one JSON object per event, with secret-looking fields redacted.

``JsonFormatter`` writes ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
``request_id`` of the request being served (when there is one), ``exception`` for a
traceback, and every extra field the caller passed (``logger.info(..., extra={...})``).
``RedactSecretsFilter`` replaces the value of any extra field whose name could carry a
secret or someone's words, by the audit log's own rule (``core.redaction``),
before any handler sees it. LOG_FORMAT in settings chooses between this and plain lines.

Neither can vet the message text itself: callers log ids, counts and lengths, never chat
text or credentials (tests/project/test_json_logs.py checks a whole chat round trip).
"""

import datetime
import decimal
import ipaddress
import json
import logging
import uuid
from pathlib import PurePath

from core.redaction import could_carry_secret
from core.request_context import current_request

REDACTED = "[redacted]"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}
# Objects Django passes as extras that say nothing the message does not, or could say more
# than it should (a request's query string).
_DROPPED_EXTRAS = frozenset({"request", "scope"})
_STRINGIFIED = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    decimal.Decimal,
    uuid.UUID,
    PurePath,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)


def extra_fields(record: logging.LogRecord) -> dict:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and key not in _DROPPED_EXTRAS
    }


# Fields that match the rule but are known to hold no secret: Django's request logger puts
# the HTTP status in ``status_code``.
SAFE_FIELDS = frozenset({"status_code"})


def looks_secret(key: str) -> bool:
    return key not in SAFE_FIELDS and could_carry_secret(key)


def _redacted(value):
    if isinstance(value, dict):
        return {
            key: REDACTED if looks_secret(str(key)) else _redacted(inner)
            for key, inner in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted(inner) for inner in value]
    return value


class RedactSecretsFilter(logging.Filter):
    """Replace extra fields named like a secret or content (``password``, ``prompt``,
    ``api_token``) with "[redacted]", also inside dictionaries; ``prompt_tokens`` or
    ``content_length`` describe such a thing and are kept. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in extra_fields(record).items():
            if looks_secret(key):
                setattr(record, key, REDACTED)
            else:
                setattr(record, key, _redacted(value))
        return True


def _json_default(value):
    if isinstance(value, _STRINGIFIED):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    # An arbitrary object's repr could hold anything: name its type only.
    return f"<{type(value).__name__}>"


def _utc_time(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One line of JSON per record; the standard fields win over extras of the same name."""

    def format(self, record: logging.LogRecord) -> str:
        extras = extra_fields(record)
        request_id = extras.pop("request_id", None) or getattr(
            current_request(), "request_id", None
        )
        line = {
            "time": _utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in extras.items():
            line.setdefault(key, value)
        return json.dumps(line, default=_json_default, ensure_ascii=True)
