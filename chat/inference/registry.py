"""Which inference workers are alive, through heartbeats in the shared cache.

Each worker writes ``inference.worker.<name>`` every WORKER_HEARTBEAT_SECONDS with a
WORKER_HEARTBEAT_TTL expiry, and keeps its name in the ``inference.workers`` list; a worker
that stops beating (crash, kill -9, lost host) drops out within the TTL. Web processes read
the heartbeats to refuse at once when no worker can take a request.
"""

import time

from django.conf import settings
from django.core.cache import cache

REGISTRY_KEY = "inference.workers"


def heartbeat_key(name: str) -> str:
    return f"inference.worker.{name}"


def beat(name: str, state: dict) -> None:
    cache.set(
        heartbeat_key(name),
        {**state, "name": name, "at": time.time()},
        settings.WORKER_HEARTBEAT_TTL,
    )
    names = cache.get(REGISTRY_KEY) or []
    if name not in names:
        # Read-modify-write: two workers starting at the same instant may drop each other's
        # name, and each puts its own back at its next beat.
        cache.set(REGISTRY_KEY, [*names, name], None)


def forget(name: str) -> None:
    cache.delete(heartbeat_key(name))
    names = cache.get(REGISTRY_KEY) or []
    if name in names:
        cache.set(REGISTRY_KEY, [n for n in names if n != name], None)


def live_workers() -> list[dict]:
    names = cache.get(REGISTRY_KEY) or []
    if not names:
        return []
    beats = cache.get_many([heartbeat_key(name) for name in names])
    return [beats[key] for key in sorted(beats)]


def is_alive(name: str) -> bool:
    return cache.get(heartbeat_key(name)) is not None


def has_room(workers: list[dict]) -> bool:
    """Whether some worker can take one more request, in its batch or its queue."""
    return any(
        w.get("active", 0) + w.get("queued", 0) < w.get("max_active", 0) + w.get("queue_size", 0)
        for w in workers
    )


def request_key(message_id) -> str:
    """Where the worker writing an answer is noted, so any web process can cancel it."""
    return f"inference.request.{message_id}"
