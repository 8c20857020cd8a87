"""chat.regenerate and chat.edit over the real websocket stack, with a scripted worker."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from audit.models import AuditEvent
from chat import services
from chat.models import Conversation, Message
from tests.support.inference import ScriptedScheduler, running_worker
from tests.support.websockets import send, until_done

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_embedded_worker(settings):
    settings.EMBEDDED_WORKER = False
    settings.CHAT_STALL_TIMEOUT = 5


@pytest.fixture
async def worker():
    async with running_worker("test-worker", scheduler_factory=ScriptedScheduler) as worker:
        yield worker
    await sync_to_async(connections.close_all)()


async def a_conversation(chat):
    await send(chat)
    started = (await until_done(chat))[0]
    return started["conversation"], started["message"]


async def test_regenerate_streams_a_new_version_of_the_latest_answer(chat, worker, employee):
    conversation, first_answer = await a_conversation(chat)

    await chat.send_json_to(
        {"type": "chat.regenerate", "conversation": conversation, "client_id": "r1"}
    )
    started, *_, done = await until_done(chat)

    assert started["type"] == "chat.started"
    assert started["client_id"] == "r1"
    assert started["message"] != first_answer
    assert done["finish_reason"] == "stop"
    stored = await Conversation.objects.aget(pk=conversation)
    thread = await sync_to_async(services.thread_as_dicts)(stored)
    assert [m["role"] for m in thread] == ["user", "assistant"]
    assert thread[-1]["versions"] == [first_answer, started["message"]]
    assert await AuditEvent.objects.filter(action="generation.regenerated").aexists()


async def test_edit_resends_the_question_and_keeps_the_old_one(chat, worker, employee):
    conversation, _ = await a_conversation(chat)
    question = await Message.objects.aget(role="user")

    await chat.send_json_to(
        {
            "type": "chat.edit",
            "conversation": conversation,
            "message": str(question.pk),
            "content": "What is the capital of Italy?",
            "client_id": "e1",
        }
    )
    _started, *_, done = await until_done(chat)

    assert done["finish_reason"] == "stop"
    stored = await Conversation.objects.aget(pk=conversation)
    thread = await sync_to_async(services.thread_as_dicts)(stored)
    assert thread[0]["content"] == "What is the capital of Italy?"
    assert thread[0]["versions"][0] == str(question.pk)
    assert await Message.objects.filter(role="user").acount() == 2


async def test_bad_regenerate_and_edit_frames_are_refused_before_anything_is_stored(
    chat, worker, employee
):
    conversation, answer = await a_conversation(chat)
    frames = [
        {"type": "chat.regenerate", "conversation": conversation},
        {"type": "chat.regenerate", "conversation": "nope", "client_id": "x"},
        {
            "type": "chat.edit",
            "conversation": conversation,
            "message": answer,
            "content": "   ",
            "client_id": "x",
        },
        {
            "type": "chat.edit",
            "conversation": conversation,
            "message": answer,
            "content": "Better",
            "client_id": "x",
        },
    ]
    codes = []
    for frame in frames:
        await chat.send_json_to(frame)
        codes.append((await chat.receive_json_from(timeout=5))["code"])

    assert codes == ["bad_frame", "bad_frame", "bad_frame", "not_found"]
    assert await Message.objects.acount() == 2
