"""Tampering with the stored events, as someone with database access but not the key would."""

import hashlib
import hmac
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit import chain
from audit.log import record
from audit.models import AppendOnlyError, AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_events():
    return [record("login.success", target=f"user:{i}", attempt=i) for i in range(1, 6)]


def raw_sql(sql: str, params=()):
    """Run SQL around the ORM's guard; on PostgreSQL first switch off the append-only
    triggers, as a database superuser could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def verify_fails_naming(sequence: int) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", stdout=io.StringIO())
    message = str(failure.value)
    assert f"#{sequence}" in message
    return message


def test_an_untouched_chain_verifies(five_events):
    out = io.StringIO()
    call_command("audit_verify", stdout=out)

    assert "Checked 5 events: the audit chain is intact" in out.getvalue()


def test_an_empty_log_verifies():
    assert chain.verify().intact


def test_a_changed_field_is_detected(five_events):
    raw_sql("UPDATE audit_auditevent SET source_ip = '10.6.6.6' WHERE sequence = 3")

    message = verify_fails_naming(3)
    assert "altered" in message


def test_changed_details_are_detected(five_events):
    raw_sql(
        "UPDATE audit_auditevent SET details = %s WHERE sequence = 2",
        ['{"attempt": 99}'],
    )

    assert "altered" in verify_fails_naming(2)


def test_a_deleted_event_is_detected(five_events):
    raw_sql("DELETE FROM audit_auditevent WHERE sequence = 4")

    assert "event #4 is missing" in verify_fails_naming(4)


def test_events_removed_from_the_end_are_detected(five_events):
    raw_sql("DELETE FROM audit_auditevent WHERE sequence >= 4")

    assert "event #4 is missing" in verify_fails_naming(4)


def test_two_swapped_events_are_detected(five_events):
    raw_sql("UPDATE audit_auditevent SET sequence = 1000 WHERE sequence = 2")
    raw_sql("UPDATE audit_auditevent SET sequence = 2 WHERE sequence = 3")
    raw_sql("UPDATE audit_auditevent SET sequence = 3 WHERE sequence = 1000")

    verify_fails_naming(2)


def test_a_hash_recomputed_without_the_key_is_detected(five_events):
    event = AuditEvent.objects.get(sequence=3)
    forged_target = "user:42"
    event.target = forged_target
    # The best an attacker without the key can do: an unkeyed hash, or a guessed key.
    unkeyed = hashlib.sha256(event.prev_hash.encode() + chain.canonical_json(event)).hexdigest()
    raw_sql(
        "UPDATE audit_auditevent SET target = %s, hash = %s WHERE sequence = 3",
        [forged_target, unkeyed],
    )

    assert "altered" in verify_fails_naming(3)

    guessed = hmac.new(b"guess", event.prev_hash.encode() + chain.canonical_json(event), "sha256")
    raw_sql("UPDATE audit_auditevent SET hash = %s WHERE sequence = 3", [guessed.hexdigest()])
    verify_fails_naming(3)


def test_each_verification_is_itself_audited(five_events):
    call_command("audit_verify", stdout=io.StringIO())

    event = AuditEvent.objects.order_by("-sequence").first()
    assert event.action == "audit.verified"
    assert event.details["checked"] == 5
    assert event.outcome == "success"


def test_a_failed_verification_is_audited_as_a_failure(five_events):
    raw_sql("UPDATE audit_auditevent SET action = 'logout' WHERE sequence = 1")
    verify_fails_naming(1)

    event = AuditEvent.objects.filter(action="audit.verified").get()
    assert event.outcome == "failure"
    assert event.details["first_bad_sequence"] == 1


def test_the_orm_refuses_to_change_an_event(five_events):
    event = AuditEvent.objects.get(sequence=1)
    event.target = "user:99"

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(sequence=1).update(target="user:99")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["target"])


def test_the_orm_refuses_to_delete_an_event(five_events):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.get(sequence=1).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.count() == 5


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="triggers exist on PostgreSQL")
def test_postgresql_rejects_update_and_delete_even_in_raw_sql(five_events):
    from django.db import DatabaseError, transaction

    for statement in (
        "UPDATE audit_auditevent SET target = 'x' WHERE sequence = 1",
        "DELETE FROM audit_auditevent WHERE sequence = 1",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)

    assert chain.verify().intact


def test_events_signed_with_a_key_that_is_not_configured_name_that_key(five_events, settings):
    signed_with = chain.key_id(settings.AUDIT_HMAC_KEYS[0])
    settings.AUDIT_HMAC_KEYS = ["cd" * 32]

    message = verify_fails_naming(1)

    assert f"signed with the audit key {signed_with}, which is not among the audit keys" in message
    assert "Events #1 to #5 (5 events" in message


def test_every_configured_key_verifies_the_events_it_signed(five_events, settings):
    settings.AUDIT_HMAC_KEYS = ["cd" * 32, *settings.AUDIT_HMAC_KEYS]
    record("logout")

    verdict = chain.verify()

    assert verdict.intact, verdict.summary()
    assert [period.events for period in verdict.periods] == [5, 1]
