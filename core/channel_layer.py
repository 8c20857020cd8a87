"""The Redis channel layer, made to ride out a Redis restart.

channels_redis raises from ``receive()`` when its connection drops. In a consumer that
exception ends the websocket (the page then reconnects), but tasks the consumer started keep
running without it; in a worker it would end the worker. Here ``receive()`` waits for Redis
to answer again instead, so a socket keeps its channel name and a worker keeps its answers.
Messages sent while Redis was down, or kept only in the Redis that restarted, are lost: a
stream may miss a piece of text, which the stored answer still has whole.
"""

import asyncio
import logging

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# Retry at growing intervals, up to this, while Redis does not answer.
RETRY_MAX_SECONDS = 5.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    async def receive(self, channel):
        delay = 0.0
        while True:
            try:
                message = await super().receive(channel)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if delay == 0.0:
                    logger.warning("Redis is not answering (%s); retrying", error)
                delay = min(RETRY_MAX_SECONDS, max(0.5, delay * 2))
                await asyncio.sleep(delay)
                continue
            if delay:
                logger.info("Redis answers again")
            return message
