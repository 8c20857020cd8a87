"""The channel layer waits out a Redis outage instead of failing the socket or worker."""

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
