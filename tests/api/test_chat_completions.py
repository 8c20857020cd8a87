"""/v1/chat/completions end to end in one process: the real worker with a scripted model,
the in-memory channel layer, Django's ASGI handler; the answer is "Paris is the capital of
France." one word a step."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from api import services
from api.models import ApiToken, ApiUsage
from audit.models import AuditEvent
from chat.models import Conversation, Message
from tests.support.inference import running_worker

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "Paris is the capital of France."


@pytest.fixture
def token(employee):
    return services.create_api_token(actor=employee, user=employee, name="tests")[1]


async def complete(token, **fields):
    body = {
        "model": "scripted-model",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        **fields,
    }
    return await AsyncClient().post(
        "/v1/chat/completions",
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
        secure=True,
    )


async def events_of(response) -> list:
    body = b"".join([part async for part in response.streaming_content]).decode()
    assert body.endswith("data: [DONE]\n\n")
    frames = body.split("\n\n")[:-1]
    assert all(frame.startswith("data: ") for frame in frames)
    return [json.loads(frame[6:]) for frame in frames[:-1]]


async def test_one_completion_object_and_nothing_stored(token):
    async with running_worker():
        response = await complete(token)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "scripted-model"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"]["completion_tokens"] == 6
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 6
    assert await Message.objects.acount() == 0
    event = await AuditEvent.objects.aget(action="api.completion")
    assert event.details["completion_tokens"] == 6
    assert event.details["model"] == "scripted-model"
    assert ANSWER not in json.dumps(event.details)
    usage = await ApiUsage.objects.aget()
    assert (usage.requests, usage.completion_tokens) == (1, 6)


async def test_a_stream_is_openais_chunks_then_usage_then_done(token):
    async with running_worker():
        response = await complete(token, stream=True, stream_options={"include_usage": True})
        chunks = await events_of(response)

    assert response["Content-Type"] == "text/event-stream"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == ANSWER
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0] for c in finishing] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_a_stream_without_usage_has_no_usage_field(token):
    async with running_worker():
        chunks = await events_of(await complete(token, stream=True))

    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_stop_sequence_ends_the_answer_before_it(token):
    async with running_worker():
        response = await complete(token, stop=["capital"])

    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == "Paris is the "
    assert choice["finish_reason"] == "stop"


async def test_a_stop_sequence_split_over_pieces_is_held_back(token):
    async with running_worker():
        chunks = await events_of(await complete(token, stream=True, stop=["the cap"]))

    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Paris is "


async def test_system_messages_go_before_the_first_question(token):
    async with running_worker() as worker:
        seen = []
        original = worker.engine.prompt_ids

        def recording(messages, max_new_tokens):
            seen.append(messages)
            return original(messages, max_new_tokens)

        worker.engine.prompt_ids = recording
        await complete(
            token,
            messages=[
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
            ],
        )

    assert seen == [[{"role": "user", "content": "Answer briefly.\n\nCapital of France?"}]]


async def test_with_api_store_conversations_the_call_is_kept(token, employee, settings):
    settings.API_STORE_CONVERSATIONS = True

    async with running_worker():
        response = await complete(token)

    assert response.status_code == 200
    conversation = await Conversation.objects.aget(user=employee)
    stored = await sync_to_async(list)(conversation.messages.order_by("created_at"))
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("user", "What is the capital of France?", "complete"),
        ("assistant", ANSWER, "complete"),
    ]
    # Marked in the history as the API's, with the token it came with.
    made = await ApiToken.objects.aget(user=employee)
    assert conversation.origin == Conversation.Origin.API
    assert (conversation.api_token_name, conversation.api_token_prefix) == ("tests", made.prefix)
    created = await AuditEvent.objects.aget(action="conversation.created")
    assert created.details["origin"] == "api"
