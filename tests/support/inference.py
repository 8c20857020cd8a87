"""A scripted engine and scheduler for fast consumer and worker tests.

They answer with given text instead of running a model: the real engine cannot be steered
to exact bytes, and these tests are about the socket, the worker's messages and storage.
The real model is exercised by tests/chat/test_engine.py, test_scheduler.py and the system
and browser tests. ``running_worker`` runs the real InferenceWorker in the test's event loop
with them.
"""

import asyncio
import contextlib
import logging
import threading
import time

from asgiref.sync import sync_to_async
from django.db import connections

from chat.inference.scheduler import QueueFull, StepEvent

WORKER_START_TIMEOUT_SECONDS = 10


class ScriptedEngine:
    model_name = "scripted-model"
    device = "cpu"

    def __init__(self):
        from django.conf import settings

        # As the real engine: the longest answer the model's context allows.
        self.max_new_tokens = settings.LLM_MAX_NEW_TOKENS

    def prompt_ids(self, messages, max_new_tokens):
        return list(range(sum(len(m["content"]) for m in messages)))


class ScriptedScheduler:
    """Answers every request with ``reply`` split into words, one word per step for every
    active request. ``step_delay`` slows each step; ``stall`` stops emitting after the first
    word (a hung worker)."""

    reply = "Paris is the capital of France."
    step_delay = 0.0
    stall = False
    max_active = 4
    max_queue = 2

    def __init__(self, engine=None):
        self._lock = threading.Lock()
        self._active: dict[str, list[str]] = {}
        self._prompt: dict[str, int] = {}
        self._prompt_ids: dict[str, list[int]] = {}
        self._sent: dict[str, int] = {}
        self._waiting: list[str] = []
        self._cancelled: set[str] = set()

    def submit(self, request_id, prompt_ids, params):
        with self._lock:
            if len(self._active) >= self.max_active and len(self._waiting) >= self.max_queue:
                raise QueueFull
            self._waiting.append(request_id)
            self._prompt[request_id] = len(prompt_ids)
            self._prompt_ids[request_id] = prompt_ids

    def reply_for(self, request_id) -> str:
        return self.reply

    def cancel(self, request_id):
        with self._lock:
            self._cancelled.add(request_id)

    def has_work(self):
        with self._lock:
            return bool(self._active or self._waiting)

    def queued(self):
        return len(self._waiting)

    def active(self):
        return len(self._active)

    def step(self):
        if self.step_delay:
            time.sleep(self.step_delay)
        events = []
        with self._lock:
            while self._waiting and len(self._active) < self.max_active:
                request_id = self._waiting.pop(0)
                reply = self.reply_for(request_id)
                self._active[request_id] = [w + " " for w in reply.split(" ")]
                self._active[request_id][-1] = self._active[request_id][-1].rstrip()
                self._sent[request_id] = 0
            for request_id, words in list(self._active.items()):
                sent = self._sent[request_id]
                if request_id in self._cancelled:
                    events.append(self._event(request_id, "", True, "cancelled"))
                    del self._active[request_id]
                    continue
                if self.stall and sent >= 1:
                    continue
                self._sent[request_id] = sent + 1
                finished = sent + 1 == len(words)
                events.append(
                    self._event(request_id, words[sent], finished, "stop" if finished else None)
                )
                if finished:
                    del self._active[request_id]
        if self.stall and not events:
            time.sleep(0.05)
        return events

    def _event(self, request_id, text, finished, reason):
        return StepEvent(
            request_id=request_id,
            text=text,
            finished=finished,
            finish_reason=reason,
            prompt_tokens=self._prompt[request_id],
            completion_tokens=self._sent[request_id],
        )


class EchoEngine(ScriptedEngine):
    """Its "prompt" is the system prompt the model would be given, as code points: the
    site's LLM_SYSTEM_PROMPT, then a conversation's instructions, as the real engine joins
    them (Engine._encode)."""

    model_name = "echo-model"

    def prompt_ids(self, messages, max_new_tokens):
        from django.conf import settings

        instructions = messages[0]["content"] if messages[0]["role"] == "system" else ""
        system = "\n\n".join(p for p in (settings.LLM_SYSTEM_PROMPT, instructions) if p)
        return [ord(c) for c in system]


class EchoScheduler(ScriptedScheduler):
    """Answers with the system prompt it was given (EchoEngine), word by word."""

    def reply_for(self, request_id) -> str:
        system = "".join(chr(i) for i in self._prompt_ids[request_id])
        return "System prompt: " + " ".join(system.split())


class _Recorded(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


def _listed_ready(name: str) -> bool:
    from chat.inference import registry

    return any(w.get("name") == name and w.get("state") == "ready" for w in registry.live_workers())


@contextlib.asynccontextmanager
async def running_worker(
    name="test-worker",
    *,
    engine_factory=ScriptedEngine,
    scheduler_factory=ScriptedScheduler,
    timeout=WORKER_START_TIMEOUT_SECONDS,
):
    """The real InferenceWorker, scripted by default, running in this event loop; entered
    once it is ready, cancelled on exit.

    Raises AssertionError, with the end of what the worker logged, when it fails or is not
    ready within ``timeout`` seconds."""
    from chat.inference.worker import InferenceWorker

    worker = InferenceWorker(
        name=name, engine_factory=engine_factory, scheduler_factory=scheduler_factory
    )
    recorded = _Recorded()
    logger = logging.getLogger("chat.inference")
    logger.addHandler(recorded)
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + timeout
        # Ready once the registry says so: that is what a consumer reads before it sends a
        # request (the worker writes it just after it is ready, with a hop to a thread).
        ready = False
        while not ready and not task.done() and time.monotonic() < deadline:
            ready = worker.state == "ready" and await sync_to_async(_listed_ready)(worker.name)
            if not ready:
                await asyncio.sleep(0.01)
        if not ready:
            ended = "stopped" if task.done() else f"was not ready within {timeout} s"
            if task.done() and not task.cancelled() and task.exception() is not None:
                ended = f"stopped with {task.exception()!r}"
            log = "\n".join(recorded.lines[-40:]) or "(nothing logged)"
            raise AssertionError(
                f"The inference worker {name} {ended} (state {worker.state!r}). "
                f"The end of its log:\n{log}"
            )
        yield worker
    finally:
        logger.removeHandler(recorded)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await sync_to_async(connections.close_all)()
