"""The Redis channel layer, made to ride out a Redis restart and to cost fewer round trips.

channels_redis raises from ``receive()`` when its connection drops. In a consumer that
exception ends the websocket (the page then reconnects), but tasks the consumer started keep
running without it; in a worker it would end the worker. Here ``receive()`` waits for Redis
to answer again instead, so a socket keeps its channel name and a worker keeps its answers.
Messages sent while Redis was down, or kept only in the Redis that restarted, are lost: a
stream may miss a piece of text, which the stored answer still has whole.

Round trips. Every piece of an answer crosses the layer twice (worker to Redis, Redis to the
web process), and while an engine decodes on the same host each round trip waits for a CPU.
channels_redis spends four round trips on a send (drop expired messages, count, add, set the
expiry) and three beside the blocking pop on a receive (restore a backup queue, copy the
popped message into it, remove it again). Here:

- ``send`` runs the same four steps as one Lua script (EVALSHA): one round trip, and the
  capacity check and the add are atomic, so a channel no longer overshoots its capacity.
- ``receive`` pops with BZPOPMIN and returns the message with no further await. The backup
  queue channels_redis keeps protects a message against a cancellation during its own
  ZADD; without that await there is no moment at which a cancellation can drop a popped
  message, so the backup, and its two extra round trips, go.

- A process's own channels (``specific.<process>!<name>``: each websocket's, each worker's)
  travel on one Redis key per process. channels_redis has every waiting receiver take a
  lock, and whoever holds it pops for all, with several tasks and a wait per message. Here
  one reader task per process pops that key and puts each message in its channel's buffer;
  a receiver only waits on its buffer. A receiver that is cancelled (a socket that closes)
  is never in the middle of a pop, so it cannot drop a message meant for another socket.
  Messages for a channel nobody receives from are dropped after ``expiry`` seconds, as in
  Redis, instead of being kept for the life of the process.

Both replace private methods of channels_redis 4.x (``_brpop_with_clean``,
``_clean_receive_backup``); tests/core/test_channel_layer.py fails if a release renames them.
"""

import asyncio
import collections
import hashlib
import logging
import time

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Retry at growing intervals, up to this, while Redis does not answer.
RETRY_MAX_SECONDS = 5.0

# KEYS[1]: the channel's sorted set. ARGV: expired-before score, capacity, score (now),
# message, expiry in seconds. Returns 1 when added, 0 when the channel is full.
SEND_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
SEND_SCRIPT_SHA = hashlib.sha1(SEND_SCRIPT.encode(), usedforsecurity=False).hexdigest()


OUTAGES = (RedisConnectionError, RedisTimeoutError, OSError)


def _next_delay(delay: float) -> float:
    return min(RETRY_MAX_SECONDS, max(0.5, delay * 2))


async def _wait_for_redis(error: Exception, delay: float) -> float:
    """After a call Redis did not answer: say so the first time, wait a growing interval,
    and return it (the next failure waits longer)."""
    if delay == 0.0:
        logger.warning("Redis is not answering (%s); retrying", error)
    delay = _next_delay(delay)
    await asyncio.sleep(delay)
    return delay


class ResilientRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The task popping this process's channels, and who waits on which of them.
        self._reader: asyncio.Task | None = None
        self._waiters: collections.Counter[str] = collections.Counter()
        # When each buffered channel last got a message, to drop what nobody receives.
        self._delivered_at: dict[str, float] = {}
        self._swept = time.monotonic()

    async def receive(self, channel):
        if "!" in channel:
            return await self._receive_own(channel)
        delay = 0.0
        while True:
            try:
                message = await RedisChannelLayer.receive(self, channel)
            except OUTAGES as error:
                delay = await _wait_for_redis(error, delay)
                continue
            if delay:
                logger.info("Redis answers again")
            return message

    # --- this process's own channels ---------------------------------------------------------

    async def _receive_own(self, channel: str) -> dict:
        """The next message on one of this process's channels, from its buffer, which the
        reader task fills (see the module)."""
        if not self.require_valid_channel_name(channel):
            raise ValueError(f"{channel!r} is not a valid channel name.")
        process_channel = self.non_local_name(channel)
        if not process_channel.endswith(self.client_prefix + "!"):
            raise ValueError(f"{channel!r} belongs to another process's channel layer.")
        buffer = self.receive_buffer[channel]
        self._waiters[channel] += 1
        try:
            if buffer.empty():
                self._start_reader(process_channel)
            return await buffer.get()
        finally:
            self._waiters[channel] -= 1
            if not self._waiters[channel]:
                del self._waiters[channel]
                if buffer.empty() and self.receive_buffer.get(channel) is buffer:
                    del self.receive_buffer[channel]
                    self._delivered_at.pop(channel, None)

    def _start_reader(self, process_channel: str) -> None:
        loop = asyncio.get_running_loop()
        reader = self._reader
        if reader is not None and not reader.done() and reader.get_loop() is not loop:
            if reader.get_loop().is_running():
                # Its buffers belong to that loop; channels_redis refuses this too.
                raise RuntimeError(
                    "Two event loops are trying to receive() on one channel layer at once."
                )
            reader = None  # a loop that has ended (async_to_sync): start afresh on this one
        if reader is None or reader.done():
            self._reader = loop.create_task(
                self._read(process_channel), name=f"channel layer reader {process_channel}"
            )

    async def _read(self, process_channel: str) -> None:
        """Pop the process's messages while anyone waits for one. Never cancelled by a
        receiver: a pop in flight always reaches a buffer. Waits out Redis outages."""
        index = self.consistent_hash(process_channel)
        key = self.prefix + process_channel
        delay = 0.0
        while self._waiters:
            try:
                content = await self._brpop_with_clean(index, key, timeout=self.brpop_timeout)
            except OUTAGES as error:
                delay = await _wait_for_redis(error, delay)
                continue
            except Exception:
                # Whatever else went wrong, the process keeps receiving.
                logger.exception("Could not receive from %s; retrying", process_channel)
                delay = _next_delay(delay)
                await asyncio.sleep(delay)
                continue
            if delay:
                logger.info("Redis answers again")
                delay = 0.0
            if content is not None:
                self._deliver(content)
            self._sweep()

    def _deliver(self, content: bytes) -> None:
        try:
            message = self.deserialize(content)
            channels = message.pop("__asgi_channel__")
        except Exception:
            logger.exception("Dropped a message that is not one this layer sent")
            return
        now = time.monotonic()
        # A group's message names each of its channels in this process.
        for channel in [channels] if isinstance(channels, str) else channels:
            self.receive_buffer[channel].put_nowait(message)
            self._delivered_at[channel] = now

    def _sweep(self) -> None:
        """Drop the buffers of channels nobody received from for ``expiry`` seconds (a
        socket that closed while its answer was still streaming)."""
        now = time.monotonic()
        if now - self._swept < self.expiry:
            return
        self._swept = now
        for channel, at in list(self._delivered_at.items()):
            if now - at > self.expiry and channel not in self._waiters:
                del self._delivered_at[channel]
                self.receive_buffer.pop(channel, None)

    async def send(self, channel, message):
        """Put ``message`` on ``channel`` in one round trip; ChannelFull at capacity."""
        if not isinstance(message, dict):
            raise TypeError("A channel message is a dict.")
        if not self.require_valid_channel_name(channel):
            raise ValueError(f"{channel!r} is not a valid channel name.")
        if "__asgi_channel__" in message:
            raise ValueError("__asgi_channel__ is reserved for the channel layer.")
        target = channel
        if "!" in channel:
            # A process-specific channel: its messages travel on the process's channel and
            # carry their full name (as channels_redis does).
            message = {**message, "__asgi_channel__": channel}
            target = self.non_local_name(channel)
            index = self.consistent_hash(channel)
        else:
            index = next(self._send_index_generator)
        now = time.time()
        arguments = (
            int(now) - int(self.expiry),
            self.get_capacity(channel),
            repr(now),
            self.serialize(message),
            int(self.expiry),
        )
        connection = self.connection(index)
        key = self.prefix + target
        try:
            added = await connection.evalsha(SEND_SCRIPT_SHA, 1, key, *arguments)
        except NoScriptError:
            # A Redis that restarted (or never saw the script) learns it here.
            added = await connection.eval(SEND_SCRIPT, 1, key, *arguments)
        if not added:
            raise ChannelFull()

    async def _brpop_with_clean(self, index, channel, timeout):
        """The oldest message on ``channel`` (a member of its sorted set), or None after
        ``timeout`` seconds. Nothing is awaited after the pop, so nothing can cancel the
        receive between the pop and the caller (see the module)."""
        result = await self.connection(index).bzpopmin(channel, timeout=timeout)
        return None if result is None else result[1]

    async def _clean_receive_backup(self, index, channel):
        """No backup queue is kept (see ``_brpop_with_clean``): nothing to remove."""
