"""``record()``: the one way to write an audit event.

Callable from views, consumers, services, signal receivers and management commands;
``arecord()`` is the same for async code. Who, from where and under which request id are
taken from the request (or, in signal receivers, from the request being served) or from a
websocket's ASGI scope. Details are stored as JSON data, never formatted into a line, so a
username or path containing newlines or quotes cannot forge another entry.
"""

import datetime
import json
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from audit import chain
from audit.actions import CATALOGUE
from audit.models import AuditEvent
from core.metrics import AUDIT_EVENTS
from core.network import scope_header
from core.redaction import could_carry_secret
from core.request_context import current_request, new_request_id

mirror_logger = logging.getLogger("audit.mirror")

USER_AGENT_MAX = 256
TARGET_MAX = 200


class AuditDetailError(ValueError):
    """A detail that must not be written to the audit log."""


def _check_details(value, path: str = "") -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise AuditDetailError(f"Audit detail keys must be strings, not {key!r}.")
            if could_carry_secret(key):
                raise AuditDetailError(
                    f"Audit detail {path}{key!r} could carry a secret or content; "
                    "record a length, a count or an id instead."
                )
            _check_details(inner, f"{path}{key}.")
    elif isinstance(value, list | tuple):
        for inner in value:
            _check_details(inner, path)


def _as_json_data(details: dict) -> dict:
    """Details exactly as they will read back from the database (dates become strings)."""
    return json.loads(json.dumps(details, cls=DjangoJSONEncoder))


def _target_label(target) -> str:
    if target is None:
        return ""
    if isinstance(target, models.Model):
        return f"{target._meta.label_lower}:{target.pk}"
    return str(target)[:TARGET_MAX]


def _authenticated(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _context(request, scope) -> dict:
    """Actor, address, user agent and request id from a request or a websocket scope."""
    if scope is not None:
        client = scope.get("client")
        return {
            "user": _authenticated(scope.get("user")),
            "source_ip": client[0] if client else "",
            "user_agent": scope_header(scope, b"user-agent") or "",
            "request_id": scope.get("request_id", ""),
        }
    if request is not None:
        return {
            "user": _authenticated(getattr(request, "user", None)),
            "source_ip": request.META.get("REMOTE_ADDR", ""),
            "user_agent": request.META.get("HTTP_USER_AGENT", ""),
            "request_id": getattr(request, "request_id", ""),
        }
    return {"user": None, "source_ip": "", "user_agent": "", "request_id": ""}


def as_mirror_line(event: AuditEvent) -> str:
    """One JSON line for an independent copy of the event (syslog, a file, a SIEM)."""
    return json.dumps(
        {
            "sequence": event.sequence,
            "time": event.created_at.astimezone(datetime.UTC).isoformat(),
            "action": event.action,
            "outcome": event.outcome,
            "actor": event.actor_username,
            "actor_id": event.actor_id,
            "target": event.target,
            "source_ip": event.source_ip,
            "user_agent": event.user_agent,
            "request_id": event.request_id,
            "details": event.details,
            "hash": event.hash,
        },
        ensure_ascii=True,
        sort_keys=True,
    )


def record(
    action: str,
    *,
    actor=None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    target=None,
    request=None,
    scope=None,
    **details,
) -> AuditEvent:
    """Append an event to the audit log and return it.

    ``actor`` defaults to the signed-in user of ``request`` or ``scope``; ``request``
    defaults to the request being served. Details may not use keys that could carry a
    secret or content (``core.redaction``).
    """
    fields = _fields(action, actor, outcome, target, request, scope, details)
    event = chain.append(**fields)
    _after_commit(event)
    return event


def record_together(*entries: dict) -> list[AuditEvent]:
    """Append several events, in order, each given as ``record()``'s arguments in one dict
    (``action`` among them): one action that leaves several events (a new conversation and
    its first message) writes them in one go instead of one after the other."""
    fields = [
        _fields(
            entry["action"],
            entry.get("actor"),
            entry.get("outcome", AuditEvent.Outcome.SUCCESS),
            entry.get("target"),
            entry.get("request"),
            entry.get("scope"),
            {
                name: value
                for name, value in entry.items()
                if name not in {"action", "actor", "outcome", "target", "request", "scope"}
            },
        )
        for entry in entries
    ]
    events = chain.append_many(fields)
    for event in events:
        _after_commit(event)
    return events


def _fields(action, actor, outcome, target, request, scope, details) -> dict:
    """An event's fields for the chain, checked: a known action and outcome, details
    without secrets or content, and who did it from where."""
    if action not in CATALOGUE:
        raise AuditDetailError(
            f"{action!r} is not in the catalogue of audit actions (audit/actions.py); add it "
            "there, with its area and what its details say."
        )
    if outcome not in AuditEvent.Outcome.values:
        raise AuditDetailError(f"{outcome!r} is not one of {AuditEvent.Outcome.values}.")
    _check_details(details)
    if request is None and scope is None:
        request = current_request()
    context = _context(request, scope)
    actor = actor if actor is not None else context["user"]
    return {
        "actor": actor if actor is not None and actor.pk is not None else None,
        "actor_username": actor.get_username() if actor is not None else "",
        "action": action,
        "outcome": outcome,
        "target": _target_label(target),
        "source_ip": context["source_ip"] or "",
        "user_agent": (context["user_agent"] or "")[:USER_AGENT_MAX],
        "request_id": context["request_id"] or new_request_id(),
        "details": _as_json_data(details),
    }


def _after_commit(event: AuditEvent) -> None:
    if settings.AUDIT_MIRROR:
        line = as_mirror_line(event)
        transaction.on_commit(lambda: mirror_logger.info(line))
    action, outcome = event.action, event.outcome
    transaction.on_commit(lambda: _count(action, outcome))


def _count(action: str, outcome: str) -> None:
    """One more committed event of this kind on /metrics (second factors refused, refusals,
    denied pages: what an operator alerts on)."""
    AUDIT_EVENTS.labels(action=action, outcome=outcome).inc()


arecord = sync_to_async(record)
arecord.__doc__ = "``record()`` for async code (consumers)."

# Probes (a scanner outside the allowed networks, someone trying conversation ids, an
# employee opening the admin) must not be able to fill the audit log: each source gets at
# most this many events of one kind a minute; the server log keeps the rest.
PROBES_AUDITED_PER_MINUTE = 20


def _within_rate(action: str, source: str) -> bool:
    key = f"audit.rate:{action}:{source}"
    cache.add(key, 0, timeout=60)
    try:
        return cache.incr(key) <= PROBES_AUDITED_PER_MINUTE
    except ValueError:  # the key expired between add and incr
        return True


def record_probe(action: str, *, source: str, **kwargs) -> AuditEvent | None:
    """``record()`` for events an outsider can trigger at will, at most
    PROBES_AUDITED_PER_MINUTE a minute per ``source`` (an address); returns None when this
    one was left out. A failure to record is logged, never raised: the refusal it records
    must still reach the person refused."""
    if not _within_rate(action, source):
        return None
    try:
        # A savepoint of its own: a probe that cannot be recorded leaves the caller's
        # transaction usable (record() alone would doom it, see audit.chain.append).
        with transaction.atomic():
            return record(action, **kwargs)
    except Exception:
        mirror_logger.exception("%s could not be written to the audit log", action)
        return None


arecord_probe = sync_to_async(record_probe)


def purge(before: datetime.datetime, *, actor=None) -> chain.PurgeResult:
    """Remove events older than ``before`` and record the checkpoint, in one transaction."""
    with transaction.atomic():
        result = chain.purge(before)
        record(
            chain.PURGE_ACTION,
            actor=actor,
            before=before.isoformat(),
            removed=result.removed,
            last_removed_sequence=result.last_removed_sequence,
            last_removed_hash=result.last_removed_hash,
        )
    return result
