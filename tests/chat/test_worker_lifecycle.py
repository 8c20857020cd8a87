"""A worker's life before it serves: loading its model, and failing to, as the chat socket
and /healthz tell it."""

import asyncio
import contextlib
import json
import logging
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import Client

from audit.models import AuditEvent
from chat.inference import registry
from chat.inference.engine import Engine
from chat.inference.worker import InferenceWorker
from chat.models import Message
from tests.support.inference import ScriptedEngine, ScriptedScheduler
from tests.support.websockets import send, until_done

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _short_stall_timeout(settings):
    settings.CHAT_STALL_TIMEOUT = 5


@contextlib.asynccontextmanager
async def started(worker: InferenceWorker):
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sync_to_async(connections.close_all)()


async def until(condition, what, timeout=10.0):
    for _ in range(int(timeout / 0.01)):
        if await sync_to_async(condition)():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def listed_states() -> list:
    return [w.get("state") for w in registry.live_workers()]


# --- loading --------------------------------------------------------------------------------


async def test_a_message_sent_while_the_model_loads_is_refused_as_loading_and_not_stored(chat):
    loaded = threading.Event()

    def slow_engine():
        loaded.wait(timeout=30)
        return ScriptedEngine()

    worker = InferenceWorker(
        name="loading-worker", engine_factory=slow_engine, scheduler_factory=ScriptedScheduler
    )
    try:
        async with started(worker):
            await until(lambda: listed_states() == ["loading"], "the worker beats as loading")

            await send(chat)

            error = await chat.receive_json_from()
            assert error["code"] == "loading"
            assert error["detail"] == (
                "SmolLM2-135M-Instruct is starting up. Your message was not sent; try again in "
                "a minute."
            )
            assert error["client_id"] == "c1"
            assert await Message.objects.acount() == 0

            loaded.set()
            await until(lambda: listed_states() == ["ready"], "the worker beats as ready")
            await send(chat)
            assert (await until_done(chat))[-1]["finish_reason"] == "stop"
    finally:
        loaded.set()


# --- a model that fails to load ------------------------------------------------------------

FAILURE = "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"


class EngineThatFailsFirst:
    """Fails the first load as a GPU still held by another process does; the next load waits
    for ``may_load`` and then succeeds."""

    def __init__(self):
        self.loads = 0
        self.may_load = threading.Event()

    def __call__(self):
        self.loads += 1
        if self.loads == 1:
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2.00 GiB")
        self.may_load.wait(timeout=30)
        return ScriptedEngine()


def healthz_workers() -> list[dict]:
    # From loopback, a monitoring address: /healthz lists each worker.
    response = Client().get("/healthz", secure=True)
    return response.json()["checks"]["inference"]["workers"]


async def test_a_model_that_fails_to_load_is_recorded_shown_and_tried_again_until_it_loads(
    chat, settings, caplog
):
    engine = EngineThatFailsFirst()
    worker = InferenceWorker(
        name="flaky-worker",
        engine_factory=engine,
        scheduler_factory=ScriptedScheduler,
        load_retry_first=0.05,
    )
    try:
        with caplog.at_level(logging.ERROR, logger="chat.inference.worker"):
            async with started(worker) as task:
                await until(lambda: engine.loads == 2, "the load is tried again")
                # While it tries again, the last failure stays visible to the IT team.
                [listed] = await sync_to_async(healthz_workers)()
                assert (listed["name"], listed["error"]) == ("flaky-worker", FAILURE)

                engine.may_load.set()
                await until(lambda: listed_states() == ["ready"], "the second load succeeds")
                [listed] = await sync_to_async(healthz_workers)()
                assert listed["error"] is None
                await send(chat)
                assert (await until_done(chat))[-1]["finish_reason"] == "stop"
                assert not task.done()
    finally:
        engine.may_load.set()

    event = await AuditEvent.objects.aget(action="worker.failed")
    assert event.outcome == "failure"
    assert event.details == {
        "worker": "flaky-worker",
        "model": settings.LLM_MODEL.name,
        "reason": FAILURE,
    }
    assert any(FAILURE in r.getMessage() for r in caplog.records)


def always_fails():
    raise FileNotFoundError("No model at /srv/models/missing")


async def test_when_the_only_worker_failed_to_load_a_message_is_refused_pointing_to_healthz(
    chat, employee_client
):
    worker = InferenceWorker(
        name="failed-worker",
        engine_factory=always_fails,
        scheduler_factory=ScriptedScheduler,
        load_retry_first=60,
    )
    async with started(worker) as task:
        await until(lambda: listed_states() == ["failed"], "the worker beats as failed")

        await send(chat)

        error = await chat.receive_json_from()
        assert error["code"] == "no_worker"
        assert error["detail"] == (
            "SmolLM2-135M-Instruct could not start, so your message was not sent. Pick another "
            "model, or ask your IT team, who can see why on the server's /healthz page."
        )
        assert await Message.objects.acount() == 0
        [listed] = await sync_to_async(healthz_workers)()
        assert listed["error"] == "FileNotFoundError: No model at /srv/models/missing"
        # The page's toolbar says no model runs, not that one is loading.
        status = await sync_to_async(employee_client.get)("/chat/api/status", secure=True)
        assert status.json()["state"] == "no_worker"
        assert not task.done()


# --- a model with a short context -----------------------------------------------------------

SHORT_CONTEXT = 512


@pytest.fixture(scope="module")
def short_context_model(prepared_model_dir, tmp_path_factory):
    """The default model's files, with a config that gives it a context of 512 tokens."""
    directory = tmp_path_factory.mktemp("models") / "SmolLM2-512"
    directory.mkdir()
    for source in prepared_model_dir.iterdir():
        if source.name != "config.json":
            (directory / source.name).symlink_to(source)
    config = json.loads((prepared_model_dir / "config.json").read_text())
    config["max_position_embeddings"] = SHORT_CONTEXT
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _conversation(turns: int) -> list[dict]:
    messages = []
    for number in range(1, turns + 1):
        messages.append({"role": "user", "content": f"Question {number}: " + "word " * 60})
        messages.append({"role": "assistant", "content": f"Answer {number}: " + "ok " * 60})
    messages.append({"role": "user", "content": "The newest question."})
    return messages


def test_a_short_context_shortens_answers_at_load_and_says_so(
    short_context_model, settings, caplog
):
    settings.LLM_MODEL = short_context_model
    settings.LLM_MAX_NEW_TOKENS = 512
    settings.LLM_MAX_CONTEXT = 0

    with caplog.at_level(logging.WARNING, logger="chat.inference.engine"):
        engine = Engine.from_settings()

    assert engine.context_length == SHORT_CONTEXT
    # A quarter of the context and the system prompt stay free for the question.
    assert 0 < engine.max_new_tokens < SHORT_CONTEXT * 3 // 4
    warning = next(r.getMessage() for r in caplog.records if "LLM_MAX_NEW_TOKENS" in r.getMessage())
    assert "LLM_MAX_NEW_TOKENS=512" in warning
    assert f"({SHORT_CONTEXT} tokens)" in warning
    assert f"at most {engine.max_new_tokens} tokens" in warning

    # A long conversation loses its oldest turns and leaves room for the whole answer.
    ids = engine.prompt_ids(_conversation(turns=8), engine.max_new_tokens)
    text = engine.tokenizer.decode(ids)
    assert len(ids) + engine.max_new_tokens <= SHORT_CONTEXT
    assert text.endswith("The newest question.<|im_end|>\n<|im_start|>assistant\n")
    assert "Question 1:" not in text


async def test_a_model_with_a_short_context_answers_questions(
    chat, short_context_model, settings, employee
):
    settings.LLM_MODEL = short_context_model
    settings.LLM_MAX_NEW_TOKENS = 512
    settings.LLM_MAX_CONTEXT = 0
    # The real model on a shared CPU: its first token may take longer than the scripted one.
    settings.CHAT_STALL_TIMEOUT = 60
    worker = InferenceWorker(name="short-context-worker")
    async with started(worker):
        await until(lambda: listed_states() == ["ready"], "the model is loaded", timeout=120)

        await send(chat, content="What is the capital of France? Answer in one word.")
        frames = await until_done(chat, timeout=60)

    assert [f["type"] for f in frames if f["type"] == "error"] == []
    assert frames[-1]["finish_reason"] in {"stop", "length"}
    assert 0 < frames[-1]["usage"]["completion_tokens"] <= worker.max_new_tokens
    answer = await Message.objects.aget(pk=frames[-1]["message"])
    assert answer.status == Message.Status.COMPLETE
    assert "Paris" in answer.content
