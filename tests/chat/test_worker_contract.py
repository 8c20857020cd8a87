"""The worker messages and the browser frames, as chat.inference.messages and chat.protocol
build them, and as the real worker and socket exchange them."""

import logging
import uuid

import msgpack
import pytest
from channels.layers import get_channel_layer

from chat import protocol
from chat.inference import messages
from chat.inference.worker import BUSY_DETAIL
from chat.models import Message
from tests.support.inference import ScriptedScheduler, running_worker
from tests.support.websockets import send, socket_for, until_done

# The fields of each message, as docs/architecture.md ("Worker messages") lists them.
DOCUMENTED_FIELDS = {
    messages.GENERATE: {"request_id", "reply_to", "message_id", "messages", "params"},
    messages.CANCEL: {"request_id"},
    messages.STARTED: {"request_id", "worker", "model"},
    messages.DELTA: {"request_id", "text"},
    messages.DONE: {
        "request_id",
        "finish_reason",
        "usage",
        "time_to_first_token_ms",
        "duration_ms",
    },
    messages.REJECTED: {"request_id", "code", "detail"},
}

EXAMPLES = [
    messages.generate(
        request_id="r1",
        reply_to="specific.abc!def",
        message_id=str(uuid.uuid4()),
        messages=[{"role": "user", "content": "Grüße 👋"}],
        params={"temperature": 0.5, "max_new_tokens": 32},
    ),
    messages.cancel(request_id="r1"),
    messages.started(request_id="r1", worker="inference.worker.x!y", model="SmolLM2"),
    messages.delta(request_id="r1", text="Paris "),
    messages.done(
        request_id="r1",
        finish_reason="stop",
        usage={"prompt_tokens": 12, "completion_tokens": 3},
        time_to_first_token_ms=None,
        duration_ms=41,
    ),
    messages.rejected(request_id="r1", code=messages.BUSY, detail="Try again in a moment."),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m["type"])
def test_every_worker_message_has_its_documented_fields_and_survives_msgpack(message):
    assert set(message) - {"type"} == DOCUMENTED_FIELDS[message["type"]]
    # channels_redis carries messages as msgpack: what arrives is what was sent.
    assert msgpack.unpackb(msgpack.packb(message)) == message


@pytest.mark.django_db(transaction=True)
async def test_the_worker_answers_a_generate_with_started_deltas_and_done_as_documented():
    layer = get_channel_layer()
    reply_to = await layer.new_channel("contract.")
    async with running_worker("contract-worker") as worker:
        await layer.send(
            messages.requests_channel(worker.model_name),
            messages.generate(
                request_id="r1",
                reply_to=reply_to,
                message_id=str(uuid.uuid4()),
                messages=[{"role": "user", "content": "What is the capital of France?"}],
                params={},
            ),
        )
        received = [await layer.receive(reply_to)]
        while received[-1]["type"] != messages.DONE:
            received.append(await layer.receive(reply_to))

    kinds = [m["type"] for m in received]
    assert kinds[0] == messages.STARTED
    assert set(kinds[1:-1]) == {messages.DELTA}
    assert received[0]["worker"] == worker.channel
    assert "".join(m["text"] for m in received[1:-1]) == "Paris is the capital of France."
    for message in received:
        assert set(message) - {"type"} == DOCUMENTED_FIELDS[message["type"]]


def test_the_browser_frames_have_their_documented_fields():
    assert protocol.chat_started(
        conversation="c", question="q", message="m", model="x", client_id="k"
    ) == {
        "type": "chat.started",
        "conversation": "c",
        "question": "q",
        "message": "m",
        "model": "x",
        "client_id": "k",
    }
    assert protocol.chat_delta(message="m", text="Hi") == {
        "type": "chat.delta",
        "message": "m",
        "text": "Hi",
    }
    assert protocol.chat_done(message="m", finish_reason="error") == {
        "type": "chat.done",
        "message": "m",
        "finish_reason": "error",
        "usage": {},
        "citations": [],
        "time_to_first_token_ms": None,
        "duration_ms": None,
    }


@pytest.mark.django_db(transaction=True)
async def test_a_question_over_the_socket_gets_the_documented_frames(employee_client, settings):
    settings.CHAT_STALL_TIMEOUT = 5
    communicator = socket_for(employee_client)
    connected, _ = await communicator.connect()
    assert connected
    try:
        async with running_worker("contract-worker"):
            await send(communicator)
            frames = await until_done(communicator)
    finally:
        await communicator.disconnect()

    started, *deltas, done = frames
    assert set(started) == {"type", "conversation", "question", "message", "model", "client_id"}
    assert {frozenset(d) for d in deltas} == {frozenset({"type", "message", "text"})}
    assert set(done) == {
        "type",
        "message",
        "finish_reason",
        "usage",
        "citations",
        "time_to_first_token_ms",
        "duration_ms",
    }
    assert done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] > 0
    assert done["duration_ms"] >= done["time_to_first_token_ms"] >= 0


class FullScheduler(ScriptedScheduler):
    """A batch and a queue with no place at all: every request is refused as busy."""

    max_active = 0
    max_queue = 0


@pytest.mark.django_db(transaction=True)
async def test_a_worker_refusal_reaches_the_person_with_its_reason_and_the_log_with_it(
    employee_client, settings, caplog
):
    settings.CHAT_STALL_TIMEOUT = 5
    communicator = socket_for(employee_client)
    connected, _ = await communicator.connect()
    assert connected
    try:
        async with running_worker("full-worker", scheduler_factory=FullScheduler):
            with caplog.at_level(logging.INFO):
                await send(communicator)
                started, error, done = await until_done(communicator)
    finally:
        await communicator.disconnect()

    assert started["type"] == "chat.started"
    assert (error["code"], error["detail"], error["client_id"]) == ("busy", BUSY_DETAIL, "c1")
    assert done["finish_reason"] == "error"
    answer = await Message.objects.aget(pk=started["message"])
    assert answer.status == Message.Status.ERROR
    logged = [r.getMessage() for r in caplog.records if r.name == "chat.consumers"]
    assert any(started["message"] in line and BUSY_DETAIL in line for line in logged)
