"""The channel layer waits out a Redis outage instead of failing the socket or worker."""

import time

import pytest
from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from core import channel_layer
from core.channel_layer import ResilientRedisChannelLayer


@pytest.fixture
def no_waiting(monkeypatch):
    waits = []

    async def sleep(seconds):
        waits.append(seconds)

    monkeypatch.setattr(channel_layer.asyncio, "sleep", sleep)
    return waits


async def test_receive_retries_until_redis_answers_again(monkeypatch, no_waiting):
    outcomes = [RedisConnectionError("Connection refused")] * 4 + [{"type": "chat.ping"}]

    async def receive(self, channel):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(RedisChannelLayer, "receive", receive)
    layer = ResilientRedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])

    assert await layer.receive("inference") == {"type": "chat.ping"}
    # Growing waits, capped, so a long outage costs a retry every few seconds at most.
    assert no_waiting == [0.5, 1.0, 2.0, 4.0]


async def test_other_errors_are_not_swallowed(monkeypatch, no_waiting):
    async def receive(self, channel):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(RedisChannelLayer, "receive", receive)
    layer = ResilientRedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])

    with pytest.raises(ValueError, match="a bug"):
        await layer.receive("inference")
    assert no_waiting == []


# --- Against a real Redis: one round trip per send, no backup queue per receive -----------


@pytest.fixture
async def real_layer(redis_server_url):
    import secrets

    # A prefix of its own: nothing another test (or process) sends can reach these channels.
    layer = ResilientRedisChannelLayer(
        hosts=[{"address": redis_server_url}],
        prefix=f"test-layer-{secrets.token_hex(4)}",
        capacity=3,
        expiry=60,
    )
    yield layer
    await layer.flush()


async def test_messages_arrive_in_order_on_shared_and_specific_channels(real_layer):
    for number in range(3):
        await real_layer.send("inference.requests", {"type": "t", "n": number})
    assert [(await real_layer.receive("inference.requests"))["n"] for _ in range(3)] == [0, 1, 2]

    reply_to = await real_layer.new_channel()
    await real_layer.send(reply_to, {"type": "inference.delta", "text": "Hel"})
    await real_layer.send(reply_to, {"type": "inference.delta", "text": "lo"})
    received = [await real_layer.receive(reply_to) for _ in range(2)]
    assert [m["text"] for m in received] == ["Hel", "lo"]
    # The routing key the layer adds on the way does not reach the receiver.
    assert all("__asgi_channel__" not in m for m in received)


async def test_a_full_channel_refuses_at_its_capacity_exactly(real_layer):
    from channels.exceptions import ChannelFull

    for number in range(3):
        await real_layer.send("inference.requests", {"type": "t", "n": number})
    with pytest.raises(ChannelFull):
        await real_layer.send("inference.requests", {"type": "t", "n": 3})
    # Room again once one is taken.
    await real_layer.receive("inference.requests")
    await real_layer.send("inference.requests", {"type": "t", "n": 4})
    assert [(await real_layer.receive("inference.requests"))["n"] for _ in range(3)] == [1, 2, 4]


async def test_expired_messages_are_dropped_and_do_not_count(real_layer):
    connection = real_layer.connection(0)
    key = real_layer.prefix + "inference.requests"
    # Three messages already past the expiry: the channel is not full because of them.
    old = time.time() - 120
    await connection.zadd(key, {b"stale-1": old, b"stale-2": old, b"stale-3": old})
    await real_layer.send("inference.requests", {"type": "t", "n": 1})
    assert await connection.zcard(key) == 1
    assert (await real_layer.receive("inference.requests"))["n"] == 1
    # And the key expires on its own, like channels_redis's.
    await real_layer.send("inference.requests", {"type": "t", "n": 2})
    assert 0 < await connection.ttl(key) <= 60


async def test_a_redis_that_forgot_the_script_learns_it_again(real_layer):
    await real_layer.connection(0).script_flush()
    await real_layer.send("inference.requests", {"type": "t", "n": 1})
    assert (await real_layer.receive("inference.requests"))["n"] == 1


async def test_a_received_message_leaves_no_backup_queue(real_layer):
    connection = real_layer.connection(0)
    await real_layer.send("inference.requests", {"type": "t", "n": 1})
    await real_layer.receive("inference.requests")
    # channels_redis copies each popped message into "<channel>$inflight" and removes it in
    # a task of its own: right after receive() returns, that copy would still be there.
    assert await connection.keys(real_layer.prefix + "*") == []


def test_the_replaced_channels_redis_methods_still_exist():
    """The layer replaces two private methods; a channels_redis that renames or reshapes
    them would silently bring back its own receive path."""
    import inspect

    for name in ("_brpop_with_clean", "_clean_receive_backup"):
        ours = inspect.signature(getattr(ResilientRedisChannelLayer, name))
        theirs = inspect.signature(getattr(RedisChannelLayer, name))
        assert ours == theirs, name
    source = inspect.getsource(RedisChannelLayer.receive_single)
    assert "self._brpop_with_clean(" in source
    assert "self._clean_receive_backup(" in source


# --- This process's own channels: one reader task, buffers per channel -----------------------


async def test_a_socket_that_closes_during_a_pop_costs_no_other_socket_its_message(
    real_layer, monkeypatch
):
    """With channels_redis, the first receiver to wait pops for every channel of the
    process; a socket closing while its pop's answer was on the way dropped that message,
    whoever it was for. Here the pop belongs to no receiver."""
    import asyncio

    real_pop = real_layer._brpop_with_clean
    popped = asyncio.Event()

    async def pop_then_travel(index, channel, timeout):
        content = await real_pop(index, channel, timeout)
        if content is not None:
            popped.set()
            await asyncio.sleep(0.05)  # the answer on its way back from Redis
        return content

    monkeypatch.setattr(real_layer, "_brpop_with_clean", pop_then_travel)
    staying, leaving = await real_layer.new_channel(), await real_layer.new_channel()
    closing = asyncio.create_task(real_layer.receive(leaving))
    await asyncio.sleep(0.01)
    receiving = asyncio.create_task(real_layer.receive(staying))
    await asyncio.sleep(0.01)

    await real_layer.send(staying, {"type": "t", "n": 1})
    await asyncio.wait_for(popped.wait(), 5)
    closing.cancel()

    assert (await asyncio.wait_for(receiving, 5))["n"] == 1


async def test_a_group_message_reaches_each_of_its_channels_once(real_layer):
    first, second = await real_layer.new_channel(), await real_layer.new_channel()
    await real_layer.group_add("people", first)
    await real_layer.group_add("people", second)

    await real_layer.group_send("people", {"type": "session.revoked"})

    assert await real_layer.receive(first) == {"type": "session.revoked"}
    assert await real_layer.receive(second) == {"type": "session.revoked"}
    assert real_layer.receive_buffer == {}


async def test_what_nobody_receives_is_dropped_after_the_expiry(redis_server_url):
    import asyncio
    import secrets

    layer = ResilientRedisChannelLayer(
        hosts=[{"address": redis_server_url}], prefix=f"test-layer-{secrets.token_hex(4)}", expiry=1
    )
    try:
        gone, here = await layer.new_channel(), await layer.new_channel()
        receiving = asyncio.create_task(layer.receive(here))
        # A socket that closed while its answer streamed: its text arrives all the same.
        await layer.send(gone, {"type": "inference.delta", "text": "late"})
        await layer.send(here, {"type": "t", "n": 1})
        assert (await asyncio.wait_for(receiving, 5))["n"] == 1
        assert gone in layer.receive_buffer

        await asyncio.sleep(1.2)
        receiving = asyncio.create_task(layer.receive(here))
        await layer.send(here, {"type": "t", "n": 2})
        assert (await asyncio.wait_for(receiving, 5))["n"] == 2
        assert gone not in layer.receive_buffer
    finally:
        await layer.flush()


async def test_the_reader_waits_out_an_outage_and_delivers_after_it(
    real_layer, monkeypatch, no_waiting
):
    import asyncio

    real_pop = real_layer._brpop_with_clean
    failures = [RedisConnectionError("Connection refused")] * 3

    async def pop(index, channel, timeout):
        if failures:
            raise failures.pop()
        return await real_pop(index, channel, timeout)

    monkeypatch.setattr(real_layer, "_brpop_with_clean", pop)
    channel = await real_layer.new_channel()
    await real_layer.send(channel, {"type": "t", "n": 1})

    assert (await asyncio.wait_for(real_layer.receive(channel), 5))["n"] == 1
    assert no_waiting == [0.5, 1.0, 2.0]


async def test_the_reader_stops_when_nobody_waits(real_layer):
    import asyncio

    real_layer.brpop_timeout = 1
    channel = await real_layer.new_channel()
    waiting = asyncio.create_task(real_layer.receive(channel))
    await asyncio.sleep(0.05)
    waiting.cancel()
    # It finishes the pop it is in (at most brpop_timeout), then ends.
    await asyncio.wait_for(asyncio.shield(real_layer._reader), 3)
    assert real_layer._waiters == {}


def test_two_event_loops_cannot_receive_at_once(redis_server_url):
    """The buffers belong to the loop that reads them, as with channels_redis."""
    import asyncio
    import secrets
    import threading

    layer = ResilientRedisChannelLayer(
        hosts=[{"address": redis_server_url}], prefix=f"test-layer-{secrets.token_hex(4)}"
    )
    first_loop_waits = threading.Event()
    stop = threading.Event()

    def first_loop():
        async def wait():
            channel = await layer.new_channel()
            waiting = asyncio.create_task(layer.receive(channel))
            await asyncio.sleep(0.05)
            first_loop_waits.set()
            while not stop.is_set():
                await asyncio.sleep(0.01)
            waiting.cancel()

        asyncio.run(wait())

    thread = threading.Thread(target=first_loop)
    thread.start()
    try:
        assert first_loop_waits.wait(5)

        async def second():
            return await asyncio.wait_for(layer.receive(await layer.new_channel()), 2)

        with pytest.raises(RuntimeError, match="Two event loops"):
            asyncio.run(second())
    finally:
        stop.set()
        thread.join(10)

    # Once that loop has ended, another may receive.
    async def after():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "t", "n": 1})
        message = await asyncio.wait_for(layer.receive(channel), 5)
        await layer.flush()
        return message

    assert asyncio.run(after())["n"] == 1
