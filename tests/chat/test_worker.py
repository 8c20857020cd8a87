"""The worker's own bookkeeping, without a model."""

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

from chat.inference import messages
from chat.inference.worker import Generation, InferenceWorker
from tests.support.inference import ScriptedScheduler, running_worker


class LayerThatAcceptsMeanwhile:
    """A channel layer whose send lets another request be accepted, as the event loop does
    while a real send awaits Redis."""

    def __init__(self, worker):
        self.worker = worker
        self.sent = []

    async def send(self, channel, message):
        self.sent.append((channel, message["type"]))
        self.worker.generations[f"new-{len(self.sent)}"] = Generation("x", "reply", "m", 0.0)


async def test_text_is_flushed_while_new_requests_arrive():
    worker = InferenceWorker(name="w", engine_factory=object, scheduler_factory=object)
    worker.layer = LayerThatAcceptsMeanwhile(worker)
    for n in range(3):
        generation = Generation(f"r{n}", f"reply-{n}", f"m{n}", 0.0)
        generation.pending = "text"
        worker.generations[generation.request_id] = generation

    await worker._flush(now=1.0)

    assert [channel for channel, _ in worker.layer.sent] == ["reply-0", "reply-1", "reply-2"]


async def _until(condition, what):
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def _generate(request_id, reply_to):
    return messages.generate(
        request_id=request_id,
        reply_to=reply_to,
        message_id=str(uuid.uuid4()),
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        params={},
    )


@pytest.mark.django_db(transaction=True)
async def test_requests_arriving_together_at_an_idle_worker_start_in_the_same_step(monkeypatch):
    # A window long enough that a loaded machine cannot make the test flaky.
    monkeypatch.setattr("chat.inference.worker.ADMISSION_WINDOW", 0.5)
    admitted_per_step = []

    class Recording(ScriptedScheduler):
        step_delay = 0.2

        def step(self):
            with self._lock:
                admitted_per_step.append(list(self._waiting))
            return super().step()

    async with running_worker("w", scheduler_factory=Recording) as worker:
        layer = get_channel_layer()
        reply_to = await layer.new_channel()
        await layer.send(messages.requests_channel(worker.model_name), _generate("first", reply_to))
        await _until(lambda: "first" in worker.generations, "the first request is accepted")
        await layer.send(
            messages.requests_channel(worker.model_name), _generate("second", reply_to)
        )
        await _until(lambda: admitted_per_step, "a step runs")

    # Without the window, the first step would have started with the first request alone.
    assert admitted_per_step[0] == ["first", "second"]


@pytest.mark.django_db(transaction=True)
async def test_a_newcomer_is_accepted_while_a_step_runs(monkeypatch):
    monkeypatch.setattr("chat.inference.worker.ADMISSION_WINDOW", 0.0)
    stepping = asyncio.Event()
    loop = asyncio.get_running_loop()
    seen_at_step_end = []

    class Slow(ScriptedScheduler):
        # Long enough for the event loop to accept a request, however loaded the machine.
        step_delay = 1.0

        def step(self):
            loop.call_soon_threadsafe(stepping.set)
            events = super().step()
            seen_at_step_end.append(set(worker.generations))
            return events

    async with running_worker("w", scheduler_factory=Slow) as worker:
        layer = get_channel_layer()
        reply_to = await layer.new_channel()
        await layer.send(messages.requests_channel(worker.model_name), _generate("first", reply_to))
        await asyncio.wait_for(stepping.wait(), 5)
        await layer.send(
            messages.requests_channel(worker.model_name), _generate("second", reply_to)
        )
        await _until(lambda: len(seen_at_step_end) >= 2, "two steps have run")

    # Its prompt was encoded beside the first step, not after it: it was in by that step's
    # end, ready to join the next one.
    assert "second" in seen_at_step_end[0]


@pytest.mark.django_db(transaction=True)
async def test_an_answer_without_a_message_is_streamed_and_never_stored():
    from asgiref.sync import sync_to_async

    from audit.models import AuditEvent
    from chat.models import Message

    async with running_worker("w") as worker:
        layer = get_channel_layer()
        reply_to = await layer.new_channel()
        request = _generate("unkept", reply_to)
        request["message_id"] = ""
        await layer.send(messages.requests_channel(worker.model_name), request)
        received = []
        while not received or received[-1]["type"] != messages.DONE:
            received.append(await asyncio.wait_for(layer.receive(reply_to), 10))

    text = "".join(m["text"] for m in received if m["type"] == messages.DELTA)
    assert text == "Paris is the capital of France."
    assert received[-1]["finish_reason"] == "stop"
    assert await sync_to_async(Message.objects.count)() == 0
    actions = await sync_to_async(list)(AuditEvent.objects.values_list("action", flat=True))
    assert not [a for a in actions if a.startswith("generation.")]
