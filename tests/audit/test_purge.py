import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from audit import chain
from audit.log import record
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


@pytest.fixture
def clock(monkeypatch):
    """Appends read this clock; tests set it to make events of the past."""
    current = {"now": datetime.datetime(2024, 1, 1, 12, tzinfo=UTC)}
    monkeypatch.setattr(chain, "now", lambda: current["now"])
    return current


def _events_on(clock, day: datetime.date, count: int):
    clock["now"] = datetime.datetime.combine(day, datetime.time(9), tzinfo=UTC)
    for i in range(count):
        record("login.success", target=f"user:{i}")


def test_purge_removes_old_events_and_the_rest_still_verifies(clock):
    _events_on(clock, datetime.date(2024, 1, 10), 3)
    _events_on(clock, datetime.date(2024, 3, 10), 2)
    clock["now"] = datetime.datetime(2024, 6, 1, tzinfo=UTC)

    out = io.StringIO()
    call_command("audit_purge", before="2024-02-01", stdout=out)

    assert "Removed 3 events up to #3" in out.getvalue()
    assert list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True)) == [
        4,
        5,
        6,
    ]
    checkpoint = AuditEvent.objects.get(sequence=6)
    assert checkpoint.action == "audit.purged"
    assert checkpoint.details["removed"] == 3
    assert checkpoint.details["last_removed_sequence"] == 3
    verdict = chain.verify()
    assert verdict.intact, verdict.summary()
    assert verdict.checked == 3


def test_a_second_purge_keeps_the_chain_verifiable(clock):
    _events_on(clock, datetime.date(2024, 1, 10), 2)
    _events_on(clock, datetime.date(2024, 3, 10), 2)
    _events_on(clock, datetime.date(2024, 5, 10), 2)
    clock["now"] = datetime.datetime(2024, 6, 1, tzinfo=UTC)

    call_command("audit_purge", before="2024-02-01", stdout=io.StringIO())
    call_command("audit_purge", before="2024-04-01", stdout=io.StringIO())

    assert chain.verify().intact


def test_deleting_the_oldest_events_without_purge_is_detected(clock):
    from tests.audit.test_chain_integrity import raw_sql

    _events_on(clock, datetime.date(2024, 1, 10), 4)

    raw_sql("DELETE FROM audit_auditevent WHERE sequence <= 2")

    verdict = chain.verify()
    assert not verdict.intact
    assert "no purge checkpoint" in verdict.problem


def test_dry_run_removes_nothing(clock):
    _events_on(clock, datetime.date(2024, 1, 10), 2)
    clock["now"] = datetime.datetime(2024, 6, 1, tzinfo=UTC)

    out = io.StringIO()
    call_command("audit_purge", before="2024-02-01", dry_run=True, stdout=out)

    assert "2 events are older than 2024-02-01; none removed" in out.getvalue()
    assert AuditEvent.objects.count() == 2


def test_a_date_in_the_future_or_malformed_is_refused():
    with pytest.raises(CommandError, match="in the future"):
        call_command("audit_purge", before="2999-01-01")
    with pytest.raises(CommandError, match="is not a date"):
        call_command("audit_purge", before="last tuesday")
