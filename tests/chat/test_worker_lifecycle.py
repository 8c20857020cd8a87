"""A worker's life before it serves: loading its model, and failing to, as the chat socket
and /healthz tell it."""

import asyncio
import contextlib
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from chat.inference import registry
from chat.inference.worker import InferenceWorker
from chat.models import Message
from tests.chat.test_consumer import send, socket_for, until_done
from tests.support.inference import ScriptedEngine, ScriptedScheduler

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _short_stall_timeout(settings):
    settings.CHAT_STALL_TIMEOUT = 5


@pytest.fixture
async def chat(employee_client):
    communicator = socket_for(employee_client)
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()
    await sync_to_async(connections.close_all)()


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
                "The assistant is starting up. Your message was not sent; try again in a minute."
            )
            assert error["client_id"] == "c1"
            assert await Message.objects.acount() == 0

            loaded.set()
            await until(lambda: listed_states() == ["ready"], "the worker beats as ready")
            await send(chat)
            assert (await until_done(chat))[-1]["finish_reason"] == "stop"
    finally:
        loaded.set()
