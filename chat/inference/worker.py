"""The inference worker: takes requests from the channel layer, decodes them in one running
batch, streams text back to whoever asked, and stores each finished answer.

Its messages are built in ``chat.inference.messages`` (docs/architecture.md, "Worker
messages"). It takes ``inference.generate`` from the shared requests channel only when it has
room, so requests wait there for whichever worker frees up first; ``inference.cancel``
arrives on its own channel; text goes back as ``inference.delta``, coalesced to at most one
per DELTA_INTERVAL.

The worker stores the answer itself before it sends ``inference.done``, so an answer is kept
even when the browser went away. In the embedded profile the worker is a task on the web
process's event loop; only the model's work runs in a thread of its own.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from audit.log import record
from chat import services
from chat.inference import messages, metrics, registry
from chat.inference.params import SamplingParams

logger = logging.getLogger(__name__)

# Text is sent at most this often per answer: smooth to read, few messages to route.
DELTA_INTERVAL = 0.05
# An idle worker waits this long after a request before its first step, so that requests
# arriving together are prefilled together; small against a prefill (~100 ms here).
ADMISSION_WINDOW = 0.02
# A model that fails to load is tried again 5 s later, then after twice as long each time, up
# to every 5 minutes: a passing fault (a GPU still held by a process that is ending, a model
# still being copied) clears soon, and a lasting one is not retried in a tight loop.
LOAD_RETRY_FIRST_SECONDS = 5.0
LOAD_RETRY_MAX_SECONDS = 300.0
# Why a load failed, as the heartbeat, /healthz and the audit log show it: one line.
ERROR_MAX_CHARS = 300
BUSY_DETAIL = (
    "The assistant is answering as many people as it can; send your message again in a moment."
)


@dataclass
class Generation:
    request_id: str
    reply_to: str
    message_id: str
    started: float
    parts: list[str] = field(default_factory=list)
    pending: str = ""
    last_sent: float = 0.0
    first_token_at: float | None = None
    observed: metrics.GenerationMetrics = field(default_factory=metrics.GenerationMetrics)

    def text(self) -> str:
        return "".join(self.parts)


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class InferenceWorker:
    def __init__(
        self,
        *,
        name: str | None = None,
        model_name: str | None = None,
        engine_factory=None,
        scheduler_factory=None,
        load_retry_first: float = LOAD_RETRY_FIRST_SECONDS,
        load_retry_max: float = LOAD_RETRY_MAX_SECONDS,
    ):
        if engine_factory is None or scheduler_factory is None:
            # Imported here: torch and transformers load slowly, and an upstream worker or a
            # test with scripted parts never needs them.
            from chat.inference.engine import Engine
            from chat.inference.scheduler import Scheduler

            engine_factory = engine_factory or Engine.from_settings
            scheduler_factory = scheduler_factory or Scheduler.from_settings
        self.name = name or default_name()
        self.engine_factory = engine_factory
        self.scheduler_factory = scheduler_factory
        self.load_retry_first = load_retry_first
        self.load_retry_max = load_retry_max
        self.state = "loading"
        # Why the model last failed to load; None once it is loaded.
        self.error: str | None = None
        # The model this worker serves, announced from the start (heartbeats while loading
        # let the page say "starting up" for it); the loaded engine's name replaces it.
        self.model_name = model_name or Path(settings.LLM_MODEL).name
        self.max_new_tokens = settings.LLM_MAX_NEW_TOKENS
        self.generations: dict[str, Generation] = {}
        self.scheduler = None
        self.layer = None
        self.channel = None
        self._work = asyncio.Event()
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    # --- life cycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Load the model (trying again while it fails), then serve until cancelled."""
        loop = asyncio.get_running_loop()
        self.layer = get_channel_layer()
        self.channel = await self.layer.new_channel("inference.worker.")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._executor = executor
        self._prompts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompts")
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            engine, self.scheduler = await self._load(loop, executor)
            self.engine = engine
            self.model_name = engine.model_name
            # What the model's context allows (at most LLM_MAX_NEW_TOKENS).
            self.max_new_tokens = engine.max_new_tokens
            metrics.watch_scheduler(self.scheduler)
            self.state = "ready"
            self.error = None
            self._room.set()
            await sync_to_async(record)(
                "worker.started", worker=self.name, model=self.model_name, device=str(engine.device)
            )
            await self._beat()
            logger.info("Inference worker %s serves %s", self.name, self.model_name)
            await asyncio.gather(self._take_requests(), self._take_control(), self._decode())
        finally:
            heartbeat.cancel()
            await self._stop()
            executor.shutdown(wait=False, cancel_futures=True)
            self._prompts.shutdown(wait=False, cancel_futures=True)

    async def _load(self, loop, executor):
        """The engine and its scheduler. A failure is logged, recorded as worker.failed and
        shown in the heartbeat, and the load is tried again after a growing pause, until it
        succeeds or the worker is cancelled."""
        delay = self.load_retry_first
        while True:
            self.state = "loading"
            try:
                engine = await loop.run_in_executor(executor, self.engine_factory)
                return engine, self.scheduler_factory(engine)
            except Exception as exc:
                self.state = "failed"
                self.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:ERROR_MAX_CHARS]
                logger.error(
                    "Inference worker %s could not load its model (%s); trying again in %g s",
                    self.name,
                    self.error,
                    delay,
                    exc_info=True,
                )
                await self._report_failure()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.load_retry_max)

    async def _report_failure(self) -> None:
        try:
            await self._beat()
        except Exception as exc:
            logger.warning("Inference worker %s could not write its heartbeat: %s", self.name, exc)
        try:
            await sync_to_async(record)(
                "worker.failed",
                outcome="failure",
                worker=self.name,
                model=self.model_name,
                reason=self.error,
            )
        except Exception:
            logger.exception("worker.failed of %s could not be written to the audit log", self.name)

    async def _stop(self) -> None:
        self.state = "stopping"
        with contextlib.suppress(Exception):
            await sync_to_async(registry.forget)(self.name)
        metrics.worker_stopped(self.name)
        unfinished = list(self.generations.values())
        if unfinished:
            logger.warning(
                "Inference worker %s stopped with %d answers unfinished; they end as errors",
                self.name,
                len(unfinished),
            )
        for generation in unfinished:
            await self._finish(generation, "error", {})
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await sync_to_async(record)(
                    "worker.stopped", worker=self.name, model=self.model_name
                )

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self._beat()
            await asyncio.sleep(settings.WORKER_HEARTBEAT_SECONDS)

    async def _beat(self) -> None:
        scheduler = self.scheduler
        state = {
            "state": self.state,
            "model": self.model_name,
            "channel": self.channel,
            "active": scheduler.active() if scheduler else 0,
            "queued": scheduler.queued() if scheduler else 0,
            "max_active": settings.LLM_MAX_BATCH,
            "queue_size": settings.LLM_QUEUE_SIZE,
            "error": self.error,
        }
        await sync_to_async(registry.beat)(self.name, state)
        metrics.worker_heartbeat(self.name, self.model_name)

    # --- requests -------------------------------------------------------------------------

    def _has_room(self) -> bool:
        scheduler = self.scheduler
        return (
            scheduler.active() + scheduler.queued()
            < settings.LLM_MAX_BATCH + settings.LLM_QUEUE_SIZE
        )

    async def _take_requests(self) -> None:
        while True:
            await self._room.wait()
            message = await self.layer.receive(messages.requests_channel(self.model_name))
            if message.get("type") == messages.GENERATE:
                await self._accept(message)
            if not self._has_room():
                self._room.clear()

    async def _take_control(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            if message.get("type") == messages.CANCEL:
                self.scheduler.cancel(message.get("request_id", ""))
                self._work.set()

    async def _accept(self, message: dict) -> None:
        from chat.inference.scheduler import QueueFull

        request_id = message["request_id"]
        reply_to = message["reply_to"]
        try:
            params = SamplingParams.from_request(message.get("params") or {})
        except ValueError as exc:
            await self._reject(request_id, reply_to, messages.BAD_REQUEST, str(exc))
            return
        params = params.capped(self.max_new_tokens)
        try:
            # Not on the model's thread: a newcomer's prompt is ready while a step runs, so
            # people arriving together join the same step and share its prefill.
            prompt_ids = await asyncio.get_running_loop().run_in_executor(
                self._prompts, self.engine.prompt_ids, message["messages"], params.max_new_tokens
            )
            self.scheduler.submit(request_id, prompt_ids, params)
        except QueueFull:
            await self._reject(request_id, reply_to, messages.BUSY, BUSY_DETAIL)
            return
        except (ValueError, KeyError) as exc:
            await self._reject(
                request_id, reply_to, messages.FAILED, f"{type(exc).__name__}: {exc}"
            )
            return
        await self._start_generation(request_id, reply_to, message["message_id"])
        self._work.set()

    async def _start_generation(self, request_id: str, reply_to: str, message_id: str):
        """Note a taken request and tell its asker (``inference.started``)."""
        generation = self._note_generation(request_id, reply_to, message_id)
        await self._announce(generation)
        return generation

    def _note_generation(self, request_id: str, reply_to: str, message_id: str) -> Generation:
        generation = Generation(request_id, reply_to, message_id, time.monotonic())
        self.generations[request_id] = generation
        return generation

    async def _announce(self, generation: Generation) -> None:
        """Note the answer in the cache (for a Stop from another tab) and send
        ``inference.started``."""
        request_id, reply_to = generation.request_id, generation.reply_to
        try:
            # Lets a Stop from another tab find this worker; without it, only this tab can.
            if generation.message_id:
                await sync_to_async(cache.set)(
                    registry.request_key(generation.message_id),
                    {"worker": self.channel, "request_id": request_id},
                    settings.CHAT_STALL_TIMEOUT * 10,
                )
        except (RedisError, ConnectionError, OSError) as error:
            logger.warning(
                "Could not note the answer %s in the cache: %s", generation.message_id, error
            )
        await self._send(
            reply_to,
            messages.started(request_id=request_id, worker=self.channel, model=self.model_name),
        )

    # --- decoding -------------------------------------------------------------------------

    async def _decode(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._work.wait()
            if not self.scheduler.active():
                # Idle until now: people often ask together (a meeting, a training), and
                # whoever arrives within this short window shares the first prefill.
                await asyncio.sleep(ADMISSION_WINDOW)
            self._work.clear()
            while self.scheduler.has_work():
                events = await loop.run_in_executor(self._executor, self.scheduler.step)
                now = time.monotonic()
                for event in events:
                    generation = self.generations.get(event.request_id)
                    if generation is None:
                        continue
                    generation.observed.step(event, now)
                    if event.text:
                        if generation.first_token_at is None:
                            generation.first_token_at = now
                            metrics.TIME_TO_FIRST_TOKEN.observe(now - generation.started)
                        generation.parts.append(event.text)
                        generation.pending += event.text
                    if event.finished:
                        del self.generations[event.request_id]
                        usage = {
                            "prompt_tokens": event.prompt_tokens,
                            "completion_tokens": event.completion_tokens,
                        }
                        self._spawn(self._finish(generation, event.finish_reason or "stop", usage))
                await self._flush(now)
                if not self._room.is_set() and self._has_room():
                    self._room.set()

    async def _flush(self, now: float) -> None:
        # A copy: new requests are accepted (and added) while this awaits its sends.
        for generation in list(self.generations.values()):
            first = generation.last_sent == 0.0
            if generation.pending and (first or now - generation.last_sent >= DELTA_INTERVAL):
                text, generation.pending = generation.pending, ""
                generation.last_sent = now
                await self._send(
                    generation.reply_to,
                    messages.delta(request_id=generation.request_id, text=text),
                )

    async def _finish(self, generation: Generation, finish_reason: str, usage: dict):
        """Store the answer, then tell the asker (in that order: a reload sees it stored).
        The text not yet sent goes out while the answer is being stored: the asker sees the
        whole answer at once, and ``inference.done`` still comes after it."""
        ended = time.monotonic()
        tail = None
        if generation.pending:
            tail = asyncio.create_task(
                self._send(
                    generation.reply_to,
                    messages.delta(request_id=generation.request_id, text=generation.pending),
                )
            )
            generation.pending = ""
        ttft = (
            round((generation.first_token_at - generation.started) * 1000)
            if generation.first_token_at
            else None
        )
        duration = round((ended - generation.started) * 1000)
        try:
            # An answer without a message (an API call the site does not keep) is not stored.
            if generation.message_id:
                # database_sync_to_async: a connection broken by a restart is replaced.
                await database_sync_to_async(services.finish_answer)(
                    message_id=generation.message_id,
                    content=generation.text(),
                    finish_reason=finish_reason,
                    prompt_tokens=usage.get("prompt_tokens"),
                    completion_tokens=usage.get("completion_tokens"),
                    time_to_first_token_ms=ttft,
                    duration_ms=duration,
                    model_name=self.model_name,
                )
        except Exception:
            logger.exception("Could not store the answer %s", generation.message_id)
            finish_reason = "error"
        if tail is not None:
            await tail
        generation.observed.finished(finish_reason)
        await self._send(
            generation.reply_to,
            messages.done(
                request_id=generation.request_id,
                finish_reason=finish_reason,
                usage=usage,
                time_to_first_token_ms=ttft,
                duration_ms=duration,
            ),
        )

    async def _reject(self, request_id: str, reply_to: str, code: str, detail: str) -> None:
        logger.log(
            logging.INFO if code == messages.BUSY else logging.WARNING,
            "Inference worker %s refused the request %s (%s): %s",
            self.name,
            request_id,
            code,
            detail,
        )
        await self._send(
            reply_to, messages.rejected(request_id=request_id, code=code, detail=detail)
        )

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _send(self, channel: str, message: dict) -> None:
        # The asker may be gone (tab closed): its answer is stored all the same.
        try:
            await self.layer.send(channel, message)
        except Exception as exc:
            logger.debug("Could not send %s to %s: %s", message["type"], channel, exc)


def _log_failure(task: asyncio.Task) -> None:
    """Log why a background task ended with an error, instead of asyncio's "Task exception
    was never retrieved" at some later garbage collection, without its context."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("Inference task %s failed", task.get_name(), exc_info=task.exception())


# --- the embedded profile ------------------------------------------------------------------

_embedded: dict = {}


def ensure_embedded_worker() -> None:
    """Start the in-process worker on this event loop, once (embedded profile only)."""
    if not settings.EMBEDDED_WORKER:
        return
    loop = asyncio.get_running_loop()
    task = _embedded.get("task")
    if task is not None and not task.done() and _embedded.get("loop") is loop:
        return
    worker = InferenceWorker()
    task = loop.create_task(worker.run(), name=f"inference worker {worker.name}")
    task.add_done_callback(_log_failure)
    _embedded.update(loop=loop, worker=worker, task=task)
