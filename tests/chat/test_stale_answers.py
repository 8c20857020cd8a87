"""Answers left 'being written' after their worker and browser went away: ended as errors
when their owner next lists conversations or sends a message, and recorded."""

import datetime

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from audit.models import AuditEvent
from chat import services
from chat.models import Message
from tests.support.inference import running_worker
from tests.support.websockets import send, socket_for, until_done

IP = "10.8.8.8"
STALL_TIMEOUT = 5


@pytest.fixture(autouse=True)
def _stall_timeout(settings):
    settings.CHAT_STALL_TIMEOUT = STALL_TIMEOUT


def streaming_answer(user, *, age_seconds: float, content: str = "") -> Message:
    """An answer still marked as being written, started ``age_seconds`` ago."""
    turn = services.start_turn(actor=user, conversation_id=None, content="q", model_name="m")
    answer = turn.answer
    answer.content = content
    answer.created_at = timezone.now() - datetime.timedelta(seconds=age_seconds)
    answer.save(update_fields=["content", "created_at"])
    return answer


def failures() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="generation.failed").order_by("sequence"))


@pytest.mark.django_db
def test_listing_conversations_ends_a_stalled_answer_and_records_why(employee_client, employee):
    answer = streaming_answer(employee, age_seconds=3 * STALL_TIMEOUT, content="Half an ans")

    response = employee_client.get("/chat/api/conversations", REMOTE_ADDR=IP, secure=True)

    assert response.status_code == 200
    answer.refresh_from_db()
    assert answer.status == Message.Status.ERROR
    assert answer.content == "Half an ans"
    [event] = failures()
    assert (event.actor, event.outcome, event.source_ip) == (employee, "failure", IP)
    assert event.details == {
        "message_id": str(answer.pk),
        "finish_reason": "error",
        "reason": "stalled",
        "content_length": len("Half an ans"),
    }


@pytest.mark.django_db
def test_an_answer_still_within_its_time_and_other_peoples_answers_are_left_alone(
    employee_client, employee, other_employee
):
    recent = streaming_answer(employee, age_seconds=1)
    theirs = streaming_answer(other_employee, age_seconds=3 * STALL_TIMEOUT)

    employee_client.get("/chat/api/conversations", REMOTE_ADDR=IP, secure=True)

    recent.refresh_from_db()
    theirs.refresh_from_db()
    assert (recent.status, theirs.status) == (Message.Status.STREAMING, Message.Status.STREAMING)
    assert failures() == []


@pytest.mark.django_db
def test_an_answer_ended_once_is_recorded_once(employee):
    streaming_answer(employee, age_seconds=3 * STALL_TIMEOUT)

    assert services.fail_stale_answers(actor=employee) == 1
    assert services.fail_stale_answers(actor=employee) == 0

    assert len(failures()) == 1


@pytest.mark.django_db(transaction=True)
async def test_sending_a_message_ends_a_stalled_answer_and_records_why(employee_client, employee):
    answer = await sync_to_async(streaming_answer)(employee, age_seconds=3 * STALL_TIMEOUT)
    communicator = socket_for(employee_client)
    connected, _ = await communicator.connect()
    assert connected
    try:
        async with running_worker("stale-worker"):
            await send(communicator)
            assert (await until_done(communicator))[-1]["finish_reason"] == "stop"
    finally:
        await communicator.disconnect()
        await sync_to_async(connections.close_all)()

    await answer.arefresh_from_db()
    assert answer.status == Message.Status.ERROR
    stalled = [e for e in await sync_to_async(failures)() if e.details.get("reason") == "stalled"]
    assert [e.details["message_id"] for e in stalled] == [str(answer.pk)]
