"""The messages between the chat socket and the inference workers: their type names and one
builder per message (docs/architecture.md, "Worker messages").

Each builder returns the plain dict the channel layer carries, so every value in it stays
msgpack-serialisable (str, int, float, bool, None, list and dict). Both sides build every
message here and read the type names from here.
"""

import hashlib
import re

# Requests for one model wait on that model's channel (``requests_channel()``), which every
# worker serving it reads, for whichever of them has room first.
REQUESTS_CHANNEL = "inference"

GENERATE = "inference.generate"
CANCEL = "inference.cancel"
STARTED = "inference.started"
DELTA = "inference.delta"
DONE = "inference.done"
REJECTED = "inference.rejected"

# Why a worker refused a request (``rejected``'s ``code``). For BUSY and BAD_REQUEST the
# ``detail`` is a sentence for the person who asked; for FAILED it is for the log only.
BUSY = "busy"  # the worker's batch and queue are full
BAD_REQUEST = "bad_frame"  # the request's own values were refused (its sampling values)
FAILED = "internal"  # the worker could not serve it (its set-up, or a fault)
FOR_USERS = frozenset({BUSY, BAD_REQUEST})


def requests_channel(model: str) -> str:
    """The channel where requests for ``model`` wait. Channel names allow only a few
    characters and 100 of them, so the name is a readable part and a digest of the whole."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", model)[:40]
    digest = hashlib.sha256(model.encode()).hexdigest()[:16]
    return f"{REQUESTS_CHANNEL}.{readable}.{digest}"


def generate(*, request_id: str, reply_to: str, message_id: str, messages: list, params: dict):
    """Ask for an answer to ``messages`` (the history, oldest first), to be stored in the
    answer ``message_id`` and streamed to the channel ``reply_to``. With an empty
    ``message_id`` the answer is only streamed, never stored (an API call the site does not
    keep)."""
    return {
        "type": GENERATE,
        "request_id": request_id,
        "reply_to": reply_to,
        "message_id": message_id,
        "messages": messages,
        "params": params,
    }


def cancel(*, request_id: str) -> dict:
    """Stop an answer; sent to the channel of the worker that started it."""
    return {"type": CANCEL, "request_id": request_id}


def started(*, request_id: str, worker: str, model: str) -> dict:
    """A worker took the request; ``worker`` is its own channel, for ``cancel``."""
    return {"type": STARTED, "request_id": request_id, "worker": worker, "model": model}


def delta(*, request_id: str, text: str) -> dict:
    """The next piece of the answer's text."""
    return {"type": DELTA, "request_id": request_id, "text": text}


def done(
    *,
    request_id: str,
    finish_reason: str,
    usage: dict,
    time_to_first_token_ms: int | None,
    duration_ms: int,
) -> dict:
    """The answer ended and is stored; ``finish_reason`` is stop, length, cancelled or error."""
    return {
        "type": DONE,
        "request_id": request_id,
        "finish_reason": finish_reason,
        "usage": usage,
        "time_to_first_token_ms": time_to_first_token_ms,
        "duration_ms": duration_ms,
    }


def rejected(*, request_id: str, code: str, detail: str) -> dict:
    """The worker did not take the request; ``code`` is BUSY, BAD_REQUEST or FAILED."""
    return {"type": REJECTED, "request_id": request_id, "code": code, "detail": detail}
