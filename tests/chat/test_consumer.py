"""The chat socket over the project's real websocket stack, with a scripted worker."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client

from audit.models import AuditEvent
from chat import services
from chat.inference import registry
from chat.models import Conversation, Message
from tests.support.inference import ScriptedScheduler, running_worker
from tests.support.personas import PASSWORD
from tests.support.websockets import send, socket_for, until_done

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = b"https://localhost:8443"


@pytest.fixture(autouse=True)
def _no_embedded_worker(settings):
    settings.EMBEDDED_WORKER = False
    settings.CHAT_STALL_TIMEOUT = 5


@pytest.fixture
def scheduler_class():
    class Scheduler(ScriptedScheduler):
        pass

    return Scheduler


@pytest.fixture
async def worker(scheduler_class):
    async with running_worker("test-worker", scheduler_factory=scheduler_class) as worker:
        yield worker
    await sync_to_async(connections.close_all)()


# --- refusals before accept -----------------------------------------------------------------


async def test_an_anonymous_socket_is_refused():
    connected, _ = await socket_for(Client()).connect()
    assert connected is False


async def test_a_password_only_socket_is_refused(employee):
    client = Client()
    await sync_to_async(client.post)(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.60",
        secure=True,
    )
    connected, _ = await socket_for(client).connect()
    assert connected is False


async def test_a_socket_from_another_origin_is_refused(employee_client):
    connected, _ = await socket_for(employee_client, origin=b"https://evil.example").connect()
    assert connected is False


async def test_a_socket_from_outside_the_network_is_refused(employee_client):
    connected, _ = await socket_for(employee_client, address="198.51.100.1").connect()
    assert connected is False


# --- a turn ---------------------------------------------------------------------------------


async def test_a_question_streams_an_answer_that_is_stored(chat, worker, employee):
    await send(chat)

    frames = await until_done(chat)

    started, *deltas, done = frames
    assert started["type"] == "chat.started"
    assert started["model"] == "scripted-model"
    assert started["client_id"] == "c1"
    assert {f["type"] for f in deltas} == {"chat.delta"}
    text = "".join(f["text"] for f in deltas)
    assert text == "Paris is the capital of France."
    assert done["finish_reason"] == "stop"
    assert done["message"] == started["message"]
    answer = await Message.objects.aget(pk=started["message"])
    assert (answer.content, answer.status) == (text, "complete")
    assert answer.completion_tokens == 6
    actions = [
        a async for a in AuditEvent.objects.order_by("sequence").values_list("action", flat=True)
    ]
    assert actions[-3:] == ["conversation.created", "message.sent", "generation.done"]
    sent = await AuditEvent.objects.aget(action="message.sent")
    assert sent.details["content_length"] == len("What is the capital of France?")
    assert sent.source_ip == "10.0.0.60"


async def test_a_follow_up_goes_to_the_same_conversation_with_its_history(chat, worker):
    await send(chat)
    started = (await until_done(chat))[0]

    await send(chat, "And of Italy?", conversation=started["conversation"])
    again = (await until_done(chat))[0]

    assert again["conversation"] == started["conversation"]
    conversation = await Conversation.objects.aget(pk=started["conversation"])
    history = await sync_to_async(services.history)(conversation)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


# --- bad frames keep the socket usable ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        (json.dumps({"type": "chat.dance"}), "unknown_type"),
        (json.dumps({"type": "chat.send", "content": "hi"}), "bad_frame"),
        (
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": None,
                    "content": "hi",
                    "client_id": "c",
                    "extra": 1,
                }
            ),
            "bad_frame",
        ),
        (
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": "not-a-uuid",
                    "content": "hi",
                    "client_id": "c",
                }
            ),
            "bad_frame",
        ),
        (
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": None,
                    "content": "x" * 20000,
                    "client_id": "c",
                }
            ),
            "too_large",
        ),
        ("x" * 200_000, "too_large"),
    ],
)
async def test_a_bad_frame_gets_an_error_and_the_socket_keeps_working(chat, worker, raw, code):
    await chat.send_to(text_data=raw)

    error = await chat.receive_json_from()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["detail"]

    await send(chat)
    assert (await until_done(chat))[-1]["finish_reason"] == "stop"


async def test_a_binary_frame_gets_an_error(chat):
    await chat.send_to(bytes_data=b"\x00\x01")

    assert (await chat.receive_json_from())["code"] == "bad_frame"


async def test_another_users_conversation_is_not_found(chat, worker, other_employee):
    theirs = await Conversation.objects.acreate(user=other_employee, title="private")

    await send(chat, conversation=str(theirs.pk))

    error = await chat.receive_json_from()
    assert (error["code"], error["client_id"]) == ("not_found", "c1")
    assert await Message.objects.filter(conversation=theirs).acount() == 0


# --- capacity and failures ------------------------------------------------------------------


async def test_without_a_worker_the_message_is_refused_at_once(chat):
    await send(chat)

    error = await chat.receive_json_from()
    assert error["code"] == "no_worker"
    assert await Message.objects.acount() == 0


async def test_when_every_place_is_taken_the_answer_is_busy(chat, worker, settings):
    settings.LLM_MAX_BATCH = 0
    settings.LLM_QUEUE_SIZE = 0
    await worker._beat()

    await send(chat)

    assert (await chat.receive_json_from())["code"] == "busy"


async def test_one_user_may_not_run_too_many_answers(chat, worker, scheduler_class, settings):
    settings.CHAT_MAX_GENERATIONS_PER_USER = 1
    scheduler_class.step_delay = 0.2
    await send(chat)
    await chat.receive_json_from()

    await send(chat, "second question")

    frames = [await chat.receive_json_from(timeout=5)]
    while frames[-1]["type"] != "error":
        frames.append(await chat.receive_json_from(timeout=5))
    assert frames[-1]["code"] == "too_many_generations"
    await until_done(chat)


async def test_stop_cancels_the_answer_and_keeps_the_part_written(chat, worker, scheduler_class):
    scheduler_class.step_delay = 0.1
    await send(chat)
    started = await chat.receive_json_from()
    first = await chat.receive_json_from()
    assert first["type"] == "chat.delta"

    await chat.send_json_to({"type": "chat.stop", "conversation": started["conversation"]})

    frames = await until_done(chat)
    assert frames[-1]["finish_reason"] == "cancelled"
    answer = await Message.objects.aget(pk=started["message"])
    assert answer.status == "cancelled"
    assert answer.content.startswith("Paris")
    assert answer.content != ScriptedScheduler.reply
    assert await AuditEvent.objects.filter(action="generation.cancelled").aexists()


async def test_stopping_when_nothing_runs_says_so(chat, worker):
    await send(chat)
    started = (await until_done(chat))[0]

    await chat.send_json_to({"type": "chat.stop", "conversation": started["conversation"]})

    assert (await chat.receive_json_from())["code"] == "nothing_to_stop"


async def test_a_dead_worker_ends_the_stream_with_an_error_and_keeps_the_partial_answer(
    chat, worker, scheduler_class
):
    scheduler_class.stall = True
    await send(chat)
    started = await chat.receive_json_from()
    assert (await chat.receive_json_from())["text"] == "Paris "

    # The worker stops beating, as after kill -9.
    worker_heartbeat = registry.heartbeat_key(worker.name)
    from django.core.cache import cache

    await sync_to_async(cache.delete)(worker_heartbeat)

    done = (await until_done(chat, timeout=10))[-1]
    assert done["finish_reason"] == "error"
    answer = await Message.objects.aget(pk=started["message"])
    assert (answer.status, answer.content) == ("error", "Paris ")
    assert await AuditEvent.objects.filter(action="generation.failed").aexists()


async def test_the_answer_is_stored_even_if_the_browser_goes_away(
    employee_client, worker, scheduler_class
):
    scheduler_class.step_delay = 0.05
    communicator = socket_for(employee_client)
    await communicator.connect()
    await send(communicator)
    started = await communicator.receive_json_from()
    await communicator.disconnect()

    for _ in range(100):
        answer = await Message.objects.aget(pk=started["message"])
        if answer.status != "streaming":
            break
        await asyncio.sleep(0.05)
    assert (answer.status, answer.content) == ("complete", ScriptedScheduler.reply)


# --- malformed JSON and sampling values are refused before anything is stored ---------------

DEEP_FRAME = '{"type": "chat.send", "content": ' + "[" * 1500 + "]" * 1500 + "}"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (DEEP_FRAME, "nested more than"),
        (
            '{"type": "chat.send", "conversation": null, "content": "\\ud800", "client_id": "c1"}',
            "lone surrogate",
        ),
        ('{"type": "chat.stop", "conversation": "x", "\\udfff": 1}', "lone surrogate"),
        ('{"type": "chat.stop", "conversation": NaN}', "not valid JSON"),
    ],
)
async def test_malformed_json_gets_bad_frame_with_a_plain_reason(chat, worker, raw, reason):
    await chat.send_to(text_data=raw)

    error = await chat.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert reason in error["detail"]
    assert "codec" not in error["detail"]
    assert await Message.objects.acount() == 0

    await send(chat)
    assert (await until_done(chat))[-1]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"max_new_tokens": 10**9}, "max_new_tokens must be between 1 and"),
        ({"max_new_tokens": "10"}, "max_new_tokens must be a whole number"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"temperature": 7}, "temperature must be between 0 and 2"),
        ({"top_p": 0}, "top_p must be greater than 0"),
        ({"ignore_eos": True}, "`params` may only hold"),
    ],
)
async def test_sampling_values_out_of_bounds_get_bad_frame_and_store_nothing(
    chat, worker, params, reason
):
    await send(chat, params=params)

    error = await chat.receive_json_from()
    assert (error["type"], error["code"], error["client_id"]) == ("error", "bad_frame", "c1")
    assert reason in error["detail"]
    assert await Conversation.objects.acount() == 0
    assert await Message.objects.acount() == 0
    assert not await AuditEvent.objects.filter(action="message.sent").aexists()


async def test_sampling_values_within_bounds_reach_the_worker(chat, worker, scheduler_class):
    received = []
    submit = scheduler_class.submit

    def recording_submit(self, request_id, prompt_ids, params):
        received.append(params)
        submit(self, request_id, prompt_ids, params)

    scheduler_class.submit = recording_submit

    await send(chat, params={"temperature": 1, "top_p": 0.5, "max_new_tokens": 7})

    assert (await until_done(chat))[-1]["finish_reason"] == "stop"
    assert [(p.temperature, p.top_p, p.max_new_tokens) for p in received] == [(1.0, 0.5, 7)]


# --- trying someone else's conversation ids is recorded ------------------------------------


async def test_sending_to_another_users_conversation_is_recorded_as_a_probe(
    chat, worker, employee, other_employee
):
    theirs = await Conversation.objects.acreate(user=other_employee, title="private")

    await send(chat, conversation=str(theirs.pk))
    assert (await chat.receive_json_from())["code"] == "not_found"

    event = await AuditEvent.objects.aget(action="conversation.not_found")
    assert (event.outcome, event.target, event.source_ip) == ("denied", str(theirs.pk), "10.0.0.60")
    assert event.actor_id == employee.pk
    assert event.details == {"channel": "websocket"}


async def test_stopping_an_unknown_conversation_is_recorded_as_a_probe(chat):
    unknown = "00000000-0000-0000-0000-000000000001"

    await chat.send_json_to({"type": "chat.stop", "conversation": unknown})
    assert (await chat.receive_json_from())["code"] == "not_found"

    event = await AuditEvent.objects.aget(action="conversation.not_found")
    assert (event.target, event.details) == (unknown, {"channel": "websocket"})
