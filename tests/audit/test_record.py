import json
import logging

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import RequestFactory

from audit.log import AuditDetailError, arecord, record
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _request(**meta):
    request = RequestFactory().get("/somewhere", **meta)
    request.request_id = "req-123"
    return request


def test_it_fills_who_when_and_where_from_the_request(employee):
    request = _request(REMOTE_ADDR="10.1.2.3", HTTP_USER_AGENT="Firefox/140")
    request.user = employee

    event = record("conversation.created", request=request, target="conversation:7", turns=1)

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == employee
    assert stored.actor_username == "alice"
    assert stored.source_ip == "10.1.2.3"
    assert stored.user_agent == "Firefox/140"
    assert stored.request_id == "req-123"
    assert stored.target == "conversation:7"
    assert stored.details == {"turns": 1}
    assert stored.outcome == "success"
    assert stored.created_at.utcoffset().total_seconds() == 0


def test_the_username_is_kept_as_it_was_when_the_user_is_renamed(employee):
    event = record("login.success", actor=employee)
    employee.username = "alice.smith"
    employee.save()

    assert AuditEvent.objects.get(pk=event.pk).actor_username == "alice"


def test_a_model_target_is_named_by_label_and_key(employee):
    event = record("user.changed", target=employee)

    assert event.target == f"auth.user:{employee.pk}"


@pytest.mark.parametrize(
    "key", ["password", "new_password", "token", "otp_code", "api_key", "content", "text", "codes"]
)
def test_it_refuses_details_that_could_carry_secrets_or_content(key):
    with pytest.raises(AuditDetailError, match="could carry a secret or content"):
        record("conversation.renamed", **{key: "x"})

    assert AuditEvent.objects.count() == 0


def test_it_refuses_secret_keys_nested_inside_details():
    with pytest.raises(AuditDetailError):
        record("conversation.renamed", form={"fields": {"password": "x"}})


def test_lengths_and_counts_are_fine():
    event = record("message.sent", content_length=42, backup_codes_left=9, key_id="k1")

    assert event.details == {"content_length": 42, "backup_codes_left": 9, "key_id": "k1"}


def test_the_user_agent_is_truncated():
    event = record("conversation.renamed", request=_request(HTTP_USER_AGENT="A" * 1000))

    assert len(event.user_agent) == 256


def test_a_malformed_action_name_is_refused():
    with pytest.raises(AuditDetailError, match="is not in the catalogue"):
        record("Login Failure")


def test_an_action_missing_from_the_catalogue_is_refused():
    with pytest.raises(AuditDetailError, match=r"audit/actions\.py"):
        record("conversation.shared")


def test_the_security_docs_list_exactly_the_catalogue():
    from pathlib import Path

    from audit.actions import catalogue_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert catalogue_table() in docs, (
        "docs/security.md's table of events differs from audit/actions.py: paste "
        "`python -c 'from audit.actions import catalogue_table; print(catalogue_table())'` "
        "under 'Events recorded'."
    )


def test_each_event_without_a_request_still_gets_a_request_id():
    event = record("worker.started")

    assert len(event.request_id) == 32


def test_details_that_look_like_log_lines_stay_data():
    forged = 'bob\n2026-01-01 login.success by admin {"outcome": "success"}'

    event = record("login.failure", outcome="failure", username_tried=forged)

    assert AuditEvent.objects.get(pk=event.pk).details["username_tried"] == forged


@pytest.mark.django_db(transaction=True)
def test_the_mirror_writes_one_json_line_per_committed_event(settings, caplog):
    settings.AUDIT_MIRROR = True
    forged = "bob\nFAKE login.success by admin"

    with caplog.at_level(logging.INFO, logger="audit.mirror"):
        record("login.failure", outcome="failure", username_tried=forged)

    lines = [r.getMessage() for r in caplog.records if r.name == "audit.mirror"]
    assert len(lines) == 1
    assert "\n" not in lines[0]
    assert json.loads(lines[0])["details"]["username_tried"] == forged


@pytest.mark.django_db(transaction=True)
async def test_async_code_records_from_a_websocket_scope(employee):
    scope = {
        "type": "websocket",
        "client": ["192.168.5.5", 40000],
        "headers": [(b"user-agent", b"Chromium/156")],
        "user": employee,
        "request_id": "ws-1",
    }

    event = await arecord("websocket.refused", outcome="denied", scope=scope, reason="origin")
    # The event was written from asgiref's database thread; close its connection there.
    await sync_to_async(connections.close_all)()

    assert (event.actor_username, event.source_ip, event.user_agent, event.request_id) == (
        "alice",
        "192.168.5.5",
        "Chromium/156",
        "ws-1",
    )


@pytest.mark.django_db(transaction=True)
async def test_a_refused_websocket_is_recorded_with_the_client_address():
    from channels.testing import WebsocketCommunicator

    from project.asgi import application

    async def from_outside(scope, receive, send):
        return await application(dict(scope, client=["198.51.100.8", 1]), receive, send)

    communicator = WebsocketCommunicator(from_outside, "/ws/chat/")
    connected, _ = await communicator.connect()
    await communicator.disconnect()

    assert connected is False
    event = await AuditEvent.objects.filter(action="network.refused").aget()
    assert (event.source_ip, event.details["channel"], event.details["path"]) == (
        "198.51.100.8",
        "websocket",
        "/ws/chat/",
    )
    await sync_to_async(connections.close_all)()


@pytest.fixture
def failing_insert(monkeypatch):
    from django.db import DatabaseError

    from audit.models import AuditEventQuerySet

    def bulk_create(self, *args, **kwargs):
        raise DatabaseError("the audit table cannot be written")

    monkeypatch.setattr(AuditEventQuerySet, "bulk_create", bulk_create)


@pytest.mark.django_db(transaction=True)
def test_an_action_whose_event_fails_does_not_commit(employee, failing_insert):
    from django.db import DatabaseError, transaction
    from django.db.transaction import TransactionManagementError

    from chat.models import Conversation

    with pytest.raises(TransactionManagementError), transaction.atomic():
        Conversation.objects.create(user=employee, title="granted")
        # Even code that swallows the failure cannot go on and commit without the event.
        with pytest.raises(DatabaseError):
            record("conversation.created", actor=employee, target="conversation:1")
        Conversation.objects.count()
    assert not Conversation.objects.filter(user=employee).exists()


@pytest.mark.django_db(transaction=True)
def test_a_probe_that_cannot_be_recorded_leaves_the_callers_work_intact(
    employee, failing_insert, caplog
):
    from django.db import transaction

    from audit.log import record_probe
    from chat.models import Conversation

    with transaction.atomic():
        Conversation.objects.create(user=employee, title="kept")
        assert record_probe("conversation.not_found", source="10.9.9.9", target="x") is None
        Conversation.objects.create(user=employee, title="kept too")
    assert Conversation.objects.filter(user=employee).count() == 2
    assert "could not be written to the audit log" in caplog.text


def test_events_recorded_together_follow_each_other_in_the_chain(employee):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.chain import verify
    from audit.log import record_together
    from audit.models import AuditChainHead

    before = record("login.success", actor=employee)
    with CaptureQueriesContext(connection) as queries:
        created, sent = record_together(
            {"action": "conversation.created", "actor": employee, "target": "conversation:7"},
            {"action": "message.sent", "actor": employee, "content_length": 5},
        )

    assert (created.sequence, sent.sequence) == (before.sequence + 1, before.sequence + 2)
    assert sent.prev_hash == created.hash and created.prev_hash == before.hash
    stored = AuditEvent.objects.get(pk=sent.pk)
    assert (stored.action, stored.details, stored.actor_username) == (
        "message.sent",
        {"content_length": 5},
        "alice",
    )
    head = AuditChainHead.objects.get()
    assert (head.sequence, head.hash) == (sent.sequence, sent.hash)
    assert verify().intact
    # The head locked once, both events in one insert, the head moved once.
    assert len(queries) == 3


def test_events_recorded_together_are_all_checked_before_any_is_written(employee):
    from audit.log import record_together

    count = AuditEvent.objects.count()
    with pytest.raises(AuditDetailError):
        record_together(
            {"action": "conversation.created", "actor": employee},
            {"action": "message.sent", "actor": employee, "password": "hunter2"},
        )
    assert AuditEvent.objects.count() == count
