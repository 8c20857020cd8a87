"""The frames between the browser and the chat socket (docs/architecture.md, "Frames").

``parse()`` turns a text frame into a ``ChatSend`` or ``ChatStop`` or raises
``ProtocolError`` with one of the stable error codes below; the consumer answers it with an
``error`` frame and keeps the socket open. ``chat_started()``, ``chat_delta()`` and
``chat_done()`` build the frames the server sends, ``ProtocolError.frame()`` its errors.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings

from chat.inference.params import SamplingParams
from core.json_input import JSONInputError, parse_json

# Stable error codes: the browser shows `detail`, and may act on `code`.
BAD_FRAME = "bad_frame"  # not JSON, not an object, wrong or missing fields
TOO_LARGE = "too_large"  # frame or message over the size limit
UNKNOWN_TYPE = "unknown_type"
NOT_FOUND = "not_found"  # no such conversation of yours
BUSY = "busy"  # every worker's queue is full
NO_WORKER = "no_worker"  # no inference worker is running, or every one failed to start
LOADING = "loading"  # workers are running but still loading their model; nothing was saved
TOO_MANY_GENERATIONS = "too_many_generations"
GENERATION_IN_PROGRESS = "generation_in_progress"
NOTHING_TO_STOP = "nothing_to_stop"
UNAVAILABLE = "unavailable"  # the database or Redis is not answering; nothing was saved
INTERNAL = "internal"
MODEL_NOT_ALLOWED = "model_not_allowed"  # an admin restricted that model to other groups

ERROR_CODES = frozenset(
    {
        BAD_FRAME,
        TOO_LARGE,
        UNKNOWN_TYPE,
        NOT_FOUND,
        BUSY,
        NO_WORKER,
        LOADING,
        TOO_MANY_GENERATIONS,
        GENERATION_IN_PROGRESS,
        NOTHING_TO_STOP,
        UNAVAILABLE,
        INTERNAL,
        MODEL_NOT_ALLOWED,
    }
)

CLIENT_ID_MAX = 64
MODEL_NAME_MAX = 200


def max_frame_bytes() -> int:
    # Room for the longest message in the worst case of JSON escaping, plus the envelope.
    return settings.CHAT_MAX_MESSAGE_CHARS * 6 + 1024


class ProtocolError(Exception):
    def __init__(self, code: str, detail: str, client_id: str | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id

    def frame(self) -> dict:
        frame = {"type": "error", "code": self.code, "detail": self.detail}
        if self.client_id:
            frame["client_id"] = self.client_id
        return frame


def chat_started(*, conversation: str, message: str, model: str, client_id: str) -> dict:
    """An answer to the browser's ``chat.send`` (``client_id``) is being written."""
    return {
        "type": "chat.started",
        "conversation": conversation,
        "message": message,
        "model": model,
        "client_id": client_id,
    }


def chat_delta(*, message: str, text: str) -> dict:
    """The next piece of the answer's text."""
    return {"type": "chat.delta", "message": message, "text": text}


def chat_done(*, message: str, finish_reason: str, usage: dict | None = None) -> dict:
    """The answer ended and is stored; ``finish_reason`` is stop, length, cancelled or error."""
    return {
        "type": "chat.done",
        "message": message,
        "finish_reason": finish_reason,
        "usage": usage or {},
    }


@dataclass(frozen=True)
class ChatSend:
    conversation: uuid.UUID | None
    content: str
    client_id: str
    # The sampling fields the browser set, checked by SamplingParams.from_frame().
    params: dict
    # The model the person picked; None keeps the conversation's (or the site's default).
    model: str | None = None


@dataclass(frozen=True)
class ChatStop:
    conversation: uuid.UUID


def _uuid(value, field: str, client_id=None) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ProtocolError(BAD_FRAME, f"`{field}` must be a conversation id.", client_id)


def _fields(frame: dict, required: set, optional: set, client_id=None) -> None:
    missing = required - frame.keys()
    unknown = frame.keys() - required - optional - {"type"}
    if missing:
        raise ProtocolError(
            BAD_FRAME, f"Missing field(s): {', '.join(sorted(missing))}.", client_id
        )
    if unknown:
        raise ProtocolError(
            BAD_FRAME, f"Unknown field(s): {', '.join(sorted(unknown))}.", client_id
        )


def parse(text: str | None) -> ChatSend | ChatStop:
    if text is None:
        raise ProtocolError(BAD_FRAME, "Send JSON text frames, not binary ones.")
    # "surrogatepass": a lone surrogate is measured here and refused by parse_json().
    if len(text.encode("utf-8", "surrogatepass")) > max_frame_bytes():
        raise ProtocolError(TOO_LARGE, "That frame is too large.")
    try:
        frame = parse_json(text)
    except JSONInputError as error:
        raise ProtocolError(BAD_FRAME, f"{error} Send each frame as one JSON object.") from None
    if not isinstance(frame, dict):
        raise ProtocolError(BAD_FRAME, "A frame must be a JSON object with a `type`.")
    client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
    if client_id is not None and len(client_id) > CLIENT_ID_MAX:
        raise ProtocolError(BAD_FRAME, f"`client_id` is longer than {CLIENT_ID_MAX} characters.")
    kind = frame.get("type")
    if kind == "chat.send":
        return _chat_send(frame, client_id)
    if kind == "chat.stop":
        _fields(frame, {"conversation"}, set())
        return ChatStop(_uuid(frame["conversation"], "conversation"))
    raise ProtocolError(UNKNOWN_TYPE, f"Unknown frame type {str(kind)[:40]!r}.", client_id)


def _chat_send(frame: dict, client_id) -> ChatSend:
    _fields(frame, {"conversation", "content", "client_id"}, {"params", "model"}, client_id)
    if client_id is None:
        raise ProtocolError(BAD_FRAME, "`client_id` must be a string.")
    content = frame["content"]
    if not isinstance(content, str) or not content.strip():
        raise ProtocolError(BAD_FRAME, "Type a message first.", client_id)
    if len(content) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ProtocolError(
            TOO_LARGE,
            f"Your message is {len(content)} characters long; the limit is "
            f"{settings.CHAT_MAX_MESSAGE_CHARS}. Shorten it or split it up.",
            client_id,
        )
    conversation = frame["conversation"]
    conversation = None if conversation is None else _uuid(conversation, "conversation", client_id)
    try:
        params = SamplingParams.from_frame(frame.get("params", {}))
    except ValueError as error:
        raise ProtocolError(BAD_FRAME, str(error), client_id) from None
    model = frame.get("model")
    if model is not None and (
        not isinstance(model, str) or not model.strip() or len(model) > MODEL_NAME_MAX
    ):
        raise ProtocolError(
            BAD_FRAME,
            f"`model` must be the name of a model, at most {MODEL_NAME_MAX} characters.",
            client_id,
        )
    return ChatSend(conversation, content, client_id, params, model)
