"""Rotating the audit key: new events chain under a new key, old ones still verify."""

import io
import json
import stat

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError

from audit import chain
from audit.log import record
from audit.models import AuditEvent
from core import keys
from tests.audit.test_chain_integrity import raw_sql

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_file(settings, tmp_path, monkeypatch):
    """An installation whose audit keys come from var/keys/audit_hmac_key."""
    monkeypatch.delenv("AUDIT_HMAC_KEY", raising=False)
    settings.VAR_DIR = tmp_path
    keys.ensure_keys(tmp_path)
    path = keys.keys_dir(tmp_path) / keys.AUDIT_HMAC_KEY_FILE
    settings.AUDIT_HMAC_KEYS = keys.read_key_file(path)
    return path


def restart(settings, key_file):
    """What a restarted process does: read the key file again."""
    settings.AUDIT_HMAC_KEYS = keys.read_key_file(key_file)


def events(count, action="login.success"):
    for i in range(count):
        record(action, target=f"user:{i}")


def rotate() -> str:
    out = io.StringIO()
    call_command("rotate_audit_key", stdout=out)
    return out.getvalue()


def verify_output() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def key_ids_by_sequence() -> dict[int, str]:
    return dict(AuditEvent.objects.order_by("sequence").values_list("sequence", "key_id"))


def test_events_after_a_rotation_chain_under_the_new_key_and_the_whole_chain_verifies(
    settings, key_file
):
    old_key = settings.AUDIT_HMAC_KEYS[0]
    events(3)

    rotate()
    restart(settings, key_file)
    events(2)

    ids = key_ids_by_sequence()
    new_key = settings.AUDIT_HMAC_KEYS[0]
    assert new_key != old_key
    assert {ids[s] for s in (1, 2, 3, 4)} == {chain.key_id(old_key)}
    assert {ids[5], ids[6]} == {chain.key_id(new_key)}
    verdict = chain.verify()
    assert verdict.intact, verdict.summary()
    assert verdict.checked == 6
    assert verdict.warnings == []


def test_the_checkpoint_is_signed_with_the_old_key_and_names_both_key_ids_only(settings, key_file):
    old_key = settings.AUDIT_HMAC_KEYS[0]
    events(1)

    output = rotate()

    checkpoint = AuditEvent.objects.get(action="keys.rotated")
    new_key = keys.read_key_file(key_file)[0]
    assert checkpoint.key_id == chain.key_id(old_key)
    assert checkpoint.details == {
        "kind": "audit",
        "old_key_id": chain.key_id(old_key),
        "new_key_id": chain.key_id(new_key),
        "key_count": 2,
    }
    stored = json.dumps(checkpoint.details) + output
    assert old_key not in stored
    assert new_key not in stored
    assert f"#{checkpoint.sequence}" in output
    assert "Restart every web process and inference worker" in output


def test_the_key_file_keeps_the_old_key_below_the_new_one_readable_by_the_owner_only(
    settings, key_file
):
    old_key = settings.AUDIT_HMAC_KEYS[0]

    rotate()

    new_key, kept = keys.read_key_file(key_file)
    assert kept == old_key
    assert len(new_key) == len(old_key)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_verify_prints_each_keys_period(settings, key_file):
    old_id = chain.key_id(settings.AUDIT_HMAC_KEYS[0])
    events(3)
    rotate()
    restart(settings, key_file)
    new_id = chain.key_id(settings.AUDIT_HMAC_KEYS[0])
    events(2)

    output = verify_output()

    assert f"key {old_id}: events #1 to #4" in output
    assert "retired by the rotation checkpoint #4" in output
    assert f"key {new_id}: events #5 to #6" in output
    assert "It signs new events." in output
    assert "the audit chain is intact" in output


def test_right_after_a_rotation_verify_says_the_new_key_has_no_events_yet(settings, key_file):
    events(1)
    rotate()
    restart(settings, key_file)
    new_id = chain.key_id(settings.AUDIT_HMAC_KEYS[0])

    # audit_verify records its own run only after the walk.
    assert f"key {new_id}: no events yet. It signs new events." in verify_output()


def test_events_from_a_process_not_yet_restarted_verify_but_are_reported(settings, key_file):
    events(2)
    rotate()
    # This process still holds the old key, like a web process nobody restarted.
    events(2)
    restart(settings, key_file)
    events(1)

    verdict = chain.verify()

    assert verdict.intact, verdict.summary()
    (warning,) = verdict.warnings
    assert "signed 2 event(s) after its rotation checkpoint #3 (#4 to #5)" in warning
    assert "restart every web process and worker" in warning
    assert "Warning:" in verify_output()


def test_removing_the_old_key_makes_verification_fail_naming_it_and_its_events(settings, key_file):
    old_id = chain.key_id(settings.AUDIT_HMAC_KEYS[0])
    events(3)
    rotate()
    restart(settings, key_file)
    events(2)

    settings.AUDIT_HMAC_KEYS = settings.AUDIT_HMAC_KEYS[:1]
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", stdout=io.StringIO())

    message = str(failure.value)
    assert f"signed with the audit key {old_id}, which is not among the audit keys" in message
    assert "Events #1 to #4 (4 events" in message
    assert "restore that key from the key backup" in message


def test_tampering_after_a_rotation_is_still_detected(settings, key_file):
    events(2)
    rotate()
    restart(settings, key_file)
    events(2)

    raw_sql("UPDATE audit_auditevent SET target = 'user:99' WHERE sequence = 5")

    verdict = chain.verify()
    assert not verdict.intact
    assert verdict.sequence == 5
    assert "altered" in verdict.problem


def test_a_forged_checkpoint_is_detected(settings, key_file):
    events(2)
    rotate()
    restart(settings, key_file)
    events(1)

    raw_sql(
        "UPDATE audit_auditevent SET details = %s WHERE sequence = 3",
        ['{"kind": "audit", "old_key_id": "0000000000000000", "new_key_id": "x"}'],
    )

    verdict = chain.verify()
    assert verdict.sequence == 3
    assert "altered" in verdict.problem


def test_a_second_rotation_works_and_every_key_keeps_verifying_its_events(settings, key_file):
    events(1)
    rotate()
    restart(settings, key_file)
    events(1)
    rotate()
    restart(settings, key_file)
    events(1)

    assert len(keys.read_key_file(key_file)) == 3
    verdict = chain.verify()
    assert verdict.intact, verdict.summary()
    assert [period.key_id for period in verdict.periods] == [
        chain.key_id(key) for key in reversed(settings.AUDIT_HMAC_KEYS)
    ]
    assert [period.retired_at for period in verdict.periods] == [2, 4, None]


def test_a_key_from_the_environment_is_not_rotated(settings, key_file, monkeypatch):
    monkeypatch.setenv("AUDIT_HMAC_KEY", settings.AUDIT_HMAC_KEYS[0])
    before = key_file.read_text()

    with pytest.raises(CommandError, match="AUDIT_HMAC_KEY is set in the environment"):
        rotate()

    assert key_file.read_text() == before
    assert not AuditEvent.objects.filter(action="keys.rotated").exists()


def test_a_key_file_changed_since_start_up_is_refused(settings, key_file):
    keys.write_key_file(key_file, ["ab" * 32, *settings.AUDIT_HMAC_KEYS])

    with pytest.raises(CommandError, match="changed after this command loaded it"):
        rotate()

    assert not AuditEvent.objects.filter(action="keys.rotated").exists()


def test_a_key_file_that_cannot_be_written_leaves_no_checkpoint(settings, key_file, monkeypatch):
    before = key_file.read_text()

    def disk_full(path, lines):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keys, "write_key_file", disk_full)
    with pytest.raises(CommandError, match="the key file and the audit log are as they were"):
        rotate()

    assert key_file.read_text() == before
    assert not AuditEvent.objects.filter(action="keys.rotated").exists()


def test_a_checkpoint_that_cannot_be_recorded_leaves_the_key_file_alone(
    settings, key_file, monkeypatch
):
    from audit.management.commands import rotate_audit_key

    before = key_file.read_text()

    def database_down(*args, **kwargs):
        raise DatabaseError("could not connect to server")

    monkeypatch.setattr(rotate_audit_key, "record", database_down)
    with pytest.raises(CommandError, match="could not connect to server"):
        rotate()

    assert key_file.read_text() == before
