"""One API answer in flight: sent to the inference workers through the channel layer, the
way the chat socket sends the page's, so both share the workers' batches.

A ``Generation`` sends ``inference.generate`` and reads the worker's replies from a channel
of its own; it applies the caller's stop sequences (the worker has none), holding back text
that may be the start of one, and cancels the worker's work when a stop sequence appears or
the caller goes away.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field

from channels.layers import get_channel_layer
from django.conf import settings

from chat.inference import messages

logger = logging.getLogger(__name__)

# How long a cancelled answer waits for its worker's "started" to learn where to send the
# cancel: the worker takes a request at once unless every worker is full.
CANCEL_WAIT_SECONDS = 30


class WorkerRefused(Exception):
    """The worker did not take the request: ``code`` as in chat.inference.messages."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


class WorkerSilent(Exception):
    """No word from the worker for CHAT_STALL_TIMEOUT seconds."""


class StopSequences:
    """Text with the caller's stop sequences applied: ``feed()`` returns what may be shown
    now, keeping back an end that could still become a stop sequence."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self.stops:
            return text
        text = self.held + text
        found = [i for i in (text.find(stop) for stop in self.stops) if i >= 0]
        if found:
            self.stopped = True
            self.held = ""
            return text[: min(found)]
        keep = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(text)), keep, -1):
                if text.endswith(stop[:length]):
                    keep = length
                    break
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def rest(self) -> str:
        """Text held back when the answer ended without a stop sequence."""
        held, self.held = self.held, ""
        return "" if self.stopped else held


@dataclass
class Outcome:
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""


@dataclass
class Generation:
    messages: list[dict]
    params: dict
    stops: StopSequences
    message_id: str = ""
    # Where the request waits for a worker of its model.
    channel: str = messages.REQUESTS_CHANNEL
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    worker: str | None = None
    outcome: Outcome = field(default_factory=Outcome)
    started_at: float = field(default_factory=time.monotonic)
    finished: bool = False

    async def start(self) -> str:
        """Send the request; wait until a worker takes it and return the model it serves.
        WorkerRefused or WorkerSilent when none does."""
        self.layer = get_channel_layer()
        # The layer's default prefix, as the chat sockets' channels have: channels_redis reads
        # all of a process's own channels through one receiver, which listens under one
        # prefix; a reply to another prefix would wait unread while a socket is receiving.
        self.reply_to = await self.layer.new_channel()
        await self.layer.send(
            self.channel,
            messages.generate(
                request_id=self.request_id,
                reply_to=self.reply_to,
                message_id=self.message_id,
                messages=self.messages,
                params=self.params,
            ),
        )
        event = await self._next()
        if event["type"] == messages.REJECTED:
            self.finished = True
            raise WorkerRefused(event.get("code", ""), event.get("detail", ""))
        if event["type"] != messages.STARTED:
            raise WorkerSilent(f"expected inference.started, got {event['type']}")
        self.worker = event["worker"]
        self.outcome.model = event.get("model", "")
        return self.outcome.model

    async def _next(self) -> dict:
        while True:
            try:
                event = await asyncio.wait_for(
                    self.layer.receive(self.reply_to), settings.CHAT_STALL_TIMEOUT
                )
            except TimeoutError:
                raise WorkerSilent("no news from the worker") from None
            if event.get("request_id") == self.request_id:
                return event

    async def pieces(self):
        """The answer's text as it comes, with stop sequences applied; the outcome is in
        ``self.outcome`` once this ends."""
        while True:
            event = await self._next()
            if event["type"] == messages.DELTA:
                text = self.stops.feed(event["text"])
                if text:
                    yield text
                if self.stops.stopped:
                    await self._cancel()
                    await self._drain()
                    return
            elif event["type"] == messages.DONE:
                self._done(event)
                rest = self.stops.rest()
                if rest:
                    yield rest
                return

    def _done(self, event: dict) -> None:
        self.finished = True
        usage = event.get("usage") or {}
        self.outcome.prompt_tokens = usage.get("prompt_tokens") or 0
        self.outcome.completion_tokens = usage.get("completion_tokens") or 0
        reason = event.get("finish_reason") or "stop"
        self.outcome.finish_reason = "stop" if self.stops.stopped else reason

    async def _drain(self) -> None:
        """After a cancel: wait for the worker's done, for the token counts."""
        while True:
            event = await self._next()
            if event["type"] == messages.DONE:
                self._done(event)
                return

    async def _cancel(self) -> None:
        if self.worker:
            await self.layer.send(self.worker, messages.cancel(request_id=self.request_id))

    def abandon(self) -> None:
        """The caller went away: stop the worker's work, in the background (this may run
        while the caller's task is being cancelled)."""
        if self.finished or not hasattr(self, "layer"):
            return
        task = asyncio.get_running_loop().create_task(self._cancel_when_known())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _cancel_when_known(self) -> None:
        with contextlib.suppress(Exception):
            if self.worker is None:
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    while self.worker is None:
                        event = await self.layer.receive(self.reply_to)
                        if event.get("type") == messages.STARTED:
                            self.worker = event["worker"]
                        elif event.get("type") in (messages.DONE, messages.REJECTED):
                            return
            await self._cancel()
            logger.info("API answer %s cancelled: its caller went away", self.request_id)


_background: set[asyncio.Task] = set()
