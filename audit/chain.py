"""The keyed hash chain: appending events, verifying the chain, purging its oldest part.

Each event names the audit key that signed it (``key_id``). AUDIT_HMAC_KEYS lists the keys,
newest first: the first signs new events, every one verifies the events it signed. A
rotation (``manage.py rotate_audit_key``) ends one key's period with a ``keys.rotated``
checkpoint signed by that key and naming its successor.
"""

import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, models, transaction

from audit.models import AuditChainHead, AuditEvent
from core import keys

GENESIS_HASH = "0" * 64
HEAD_PK = 1
PURGE_ACTION = "audit.purged"
ROTATION_ACTION = "keys.rotated"
ROTATION_KIND = "audit"


def key_id(key: str) -> str:
    """A short, non-secret name for a key: which key signed an event, without revealing it."""
    return keys.key_id("audit", key)


def known_keys() -> dict[str, bytes]:
    """Every key whose events can be verified, by key id: all of AUDIT_HMAC_KEYS."""
    return {key_id(key): key.encode() for key in settings.AUDIT_HMAC_KEYS}


def signing_key() -> tuple[str, bytes]:
    """The newest key, the first of AUDIT_HMAC_KEYS: it signs every new event."""
    key = settings.AUDIT_HMAC_KEYS[0]
    return key_id(key), key.encode()


def canonical_json(event: AuditEvent) -> bytes:
    """The event's fields in one fixed byte form: sorted keys, no spaces, UTC microseconds."""
    fields = {
        "sequence": event.sequence,
        "created_at": event.created_at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "outcome": event.outcome,
        "target": event.target,
        "source_ip": event.source_ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "details": event.details,
        "key_id": event.key_id,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent, key: bytes) -> str:
    message = event.prev_hash.encode("ascii") + canonical_json(event)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def now() -> datetime.datetime:
    """The clock appends read; tests move it to make old events."""
    return datetime.datetime.now(datetime.UTC)


def _locked_head() -> AuditChainHead:
    # The row lock serialises appends on PostgreSQL; SQLite serialises them with its
    # IMMEDIATE transactions (settings.DATABASES OPTIONS).
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(
        pk=HEAD_PK, defaults={"sequence": 0, "hash": GENESIS_HASH}
    )
    return head


def append(**fields) -> AuditEvent:
    """Add one event at the end of the chain, inside the caller's transaction if any.

    No savepoint of its own: an event that cannot be written dooms the caller's whole
    transaction, so no action commits without its event (and two round trips per event are
    saved). Code that must survive a failed event gives it a savepoint itself
    (``audit.log.record_probe``)."""
    return append_many([fields])[0]


def append_many(entries: list[dict]) -> list[AuditEvent]:
    """Add several events at the end of the chain, in order, as ``append`` adds one: with one
    lock of the head, one insert and one update of the head for all of them (an action that
    records several events pays the round trips once)."""
    kid, key = signing_key()
    with transaction.atomic(savepoint=False):
        head = _locked_head()
        sequence, prev_hash = head.sequence, head.hash
        events = []
        for fields in entries:
            event = AuditEvent(
                sequence=sequence + 1,
                # Taken under the lock, so time never runs backwards along the chain.
                created_at=now(),
                prev_hash=prev_hash,
                key_id=kid,
                **fields,
            )
            event.hash = event_hash(event, key)
            events.append(event)
            sequence, prev_hash = event.sequence, event.hash
        AuditEvent.objects.bulk_create(events)
        AuditChainHead.objects.filter(pk=head.pk).update(sequence=sequence, hash=prev_hash)
    return events


@dataclass
class KeyPeriod:
    """The events one audit key signed, as found along the chain."""

    key_id: str
    first_sequence: int
    first_at: datetime.datetime
    last_sequence: int
    last_at: datetime.datetime
    events: int = 1
    # The rotation checkpoint that closed this key's period, if any.
    retired_at: int | None = None
    # Events this key signed after that checkpoint: processes that kept the old key.
    late_events: int = 0
    first_late: int | None = None
    last_late: int | None = None

    def add(self, event: AuditEvent) -> None:
        self.last_sequence, self.last_at = event.sequence, event.created_at
        self.events += 1
        if self.retired_at is not None and event.sequence > self.retired_at:
            self.late_events += 1
            self.last_late = event.sequence
            if self.first_late is None:
                self.first_late = event.sequence

    def describe(self) -> str:
        if self.events == 1:
            span = f"event #{self.first_sequence}, {self.first_at:%Y-%m-%d %H:%M} UTC"
        else:
            span = (
                f"events #{self.first_sequence} to #{self.last_sequence}, "
                f"{self.first_at:%Y-%m-%d %H:%M} to {self.last_at:%Y-%m-%d %H:%M} UTC "
                f"({self.events} events)"
            )
        if self.retired_at is None:
            return f"key {self.key_id}: {span}"
        return f"key {self.key_id}: {span}, retired by the rotation checkpoint #{self.retired_at}"

    def warning(self) -> str | None:
        if not self.late_events:
            return None
        return (
            f"key {self.key_id} signed {self.late_events} event(s) after its rotation "
            f"checkpoint #{self.retired_at} (#{self.first_late} to #{self.last_late}): a process "
            "still ran with the old key file. They verify, but restart every web process and "
            "worker on every host so that all of them sign with the new key."
        )


@dataclass(frozen=True)
class Verdict:
    """The result of walking the chain."""

    checked: int
    problem: str | None = None
    sequence: int | None = None
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH
    # Each key's period along the chain, oldest key first (up to the problem, if any).
    periods: tuple[KeyPeriod, ...] = ()

    @property
    def intact(self) -> bool:
        return self.problem is None

    @property
    def warnings(self) -> list[str]:
        return [text for text in (period.warning() for period in self.periods) if text]

    def summary(self) -> str:
        if self.intact:
            warnings = "".join(f" Warning: {text}" for text in self.warnings)
            return (
                f"Checked {self.checked} events: the audit chain is intact "
                f"(head #{self.head_sequence}, hash {self.head_hash}).{warnings}"
            )
        return f"Checked {self.checked} events: {self.problem}"


def _describe(event: AuditEvent) -> str:
    return f"event #{event.sequence} ({event.action}, {event.created_at:%Y-%m-%d %H:%M:%S} UTC)"


def _missing_key(event: AuditEvent) -> str:
    """Say which key is missing and which events need it."""
    span = AuditEvent.objects.filter(key_id=event.key_id).aggregate(
        first=models.Min("sequence"),
        last=models.Max("sequence"),
        count=models.Count("sequence"),
        since=models.Min("created_at"),
        until=models.Max("created_at"),
    )
    return (
        f"{_describe(event)} is signed with the audit key {event.key_id}, which is not among "
        f"the audit keys (AUDIT_HMAC_KEY or var/keys/audit_hmac_key). Events #{span['first']} "
        f"to #{span['last']} ({span['count']} events, {span['since']:%Y-%m-%d} to "
        f"{span['until']:%Y-%m-%d}) cannot be verified without it: restore that key from the "
        "key backup, below the newer keys in the file, and run audit_verify again."
    )


def _checkpoint_hash(first: AuditEvent) -> str | None:
    """The hash of the last purged event, from the newest purge checkpoint that covers it."""
    checkpoint = (
        AuditEvent.objects.filter(
            action=PURGE_ACTION, details__last_removed_sequence=first.sequence - 1
        )
        .order_by("-sequence")
        .first()
    )
    return checkpoint.details.get("last_removed_hash") if checkpoint else None


def _retired_key_id(event: AuditEvent) -> str | None:
    """The key whose period ``event`` closes, when it is an audit-key rotation checkpoint."""
    if event.action != ROTATION_ACTION or event.details.get("kind") != ROTATION_KIND:
        return None
    return event.details.get("old_key_id")


def verify() -> Verdict:
    """Walk every event in order and report the first one that is missing, altered or moved.

    Along the way, note each key's period. An event signed with a key after that key's
    rotation checkpoint is genuine (it verifies) but came from a process that was not
    restarted; it is reported as a warning, not as a break in the chain.
    """
    known = known_keys()
    head = AuditChainHead.objects.filter(pk=HEAD_PK).first()
    head_sequence = head.sequence if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    checked = 0
    previous: AuditEvent | None = None
    periods: dict[str, KeyPeriod] = {}

    def fail(problem: str, sequence: int | None) -> Verdict:
        return Verdict(
            checked, problem, sequence, head_sequence, head_hash, tuple(periods.values())
        )

    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000):
        if previous is None:
            if event.sequence == 1:
                expected_prev = GENESIS_HASH
            else:
                expected_prev = _checkpoint_hash(event)
                if expected_prev is None:
                    return fail(
                        f"events #1 to #{event.sequence - 1} are missing and no purge "
                        "checkpoint accounts for them.",
                        1,
                    )
        else:
            if event.sequence != previous.sequence + 1:
                return fail(f"event #{previous.sequence + 1} is missing.", previous.sequence + 1)
            expected_prev = previous.hash
        key = known.get(event.key_id)
        if key is None:
            return fail(_missing_key(event), event.sequence)
        if not hmac.compare_digest(event_hash(event, key), event.hash):
            return fail(
                f"{_describe(event)} has been altered: its hash does not match its content.",
                event.sequence,
            )
        if not hmac.compare_digest(event.prev_hash, expected_prev):
            return fail(
                f"{_describe(event)} is out of order: it does not follow the event before it.",
                event.sequence,
            )
        period = periods.get(event.key_id)
        if period is None:
            periods[event.key_id] = KeyPeriod(
                event.key_id, event.sequence, event.created_at, event.sequence, event.created_at
            )
        else:
            period.add(event)
        retired = _retired_key_id(event)
        if retired in periods and periods[retired].retired_at is None:
            periods[retired].retired_at = event.sequence
        checked += 1
        previous = event

    last_sequence = previous.sequence if previous else 0
    last_hash = previous.hash if previous else GENESIS_HASH
    if last_sequence != head_sequence or last_hash != head_hash:
        return fail(
            f"event #{last_sequence + 1} is missing: the chain ends at #{last_sequence} "
            f"but its head records #{head_sequence}.",
            last_sequence + 1,
        )
    return Verdict(checked, None, None, head_sequence, head_hash, tuple(periods.values()))


@dataclass(frozen=True)
class PurgeResult:
    removed: int
    last_removed_sequence: int | None = None
    last_removed_hash: str | None = None


def purge(before: datetime.datetime) -> PurgeResult:
    """Delete every event older than ``before``.

    Only a prefix of the chain is removed (every event up to the newest one older than
    ``before``), so the remaining events still link up. Call it through
    ``audit.log.purge``, which records the checkpoint carrying the last removed hash in the
    same transaction.
    """
    with transaction.atomic():
        _locked_head()
        last = AuditEvent.objects.filter(created_at__lt=before).order_by("-sequence").first()
        if last is None:
            return PurgeResult(0, None)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Lets the purge pass the append-only trigger for this transaction only.
                cursor.execute("SET LOCAL audit.allow_purge = 'on'")
        removed = AuditEvent.objects.filter(sequence__lte=last.sequence)._purge()
        return PurgeResult(removed, last.sequence, last.hash)
