"""The frames between the browser and the chat socket (docs/architecture.md, "Frames").

``parse()`` turns a text frame into a ``ChatSend``, ``ChatRegenerate``, ``ChatEdit`` or
``ChatStop`` or raises
``ProtocolError`` with one of the stable error codes below; the consumer answers it with an
``error`` frame and keeps the socket open. ``chat_started()``, ``chat_delta()`` and
``chat_done()`` build the frames the server sends, ``ProtocolError.frame()`` its errors.
"""

import uuid
from dataclasses import dataclass, field

from django.conf import settings

from chat.conversation_settings import INSTRUCTIONS_MAX
from chat.inference.params import SamplingParams
from chat.retrieval import MAX_SOURCE_IDS, Sources
from core.json_input import JSONInputError, parse_json

# Stable error codes: the browser shows `detail`, and may act on `code`.
BAD_FRAME = "bad_frame"  # not JSON, not an object, wrong or missing fields
TOO_LARGE = "too_large"  # frame or message over the size limit
UNKNOWN_TYPE = "unknown_type"
NOT_FOUND = "not_found"  # no such conversation of yours
SOURCE_NOT_FOUND = "source_not_found"  # an attached document or collection you may not read
# An attached document that cannot be searched for now (the site changed its embedding model
# and the one that indexed it is missing until it is indexed again): try again later.
SOURCE_UNSEARCHABLE = "source_unsearchable"
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
        SOURCE_NOT_FOUND,
        SOURCE_UNSEARCHABLE,
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
    # Room for the longest message and instructions in the worst case of JSON escaping,
    # plus the envelope.
    return (settings.CHAT_MAX_MESSAGE_CHARS + INSTRUCTIONS_MAX) * 6 + 1024


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


def chat_started(
    *, conversation: str, question: str, message: str, model: str, client_id: str
) -> dict:
    """An answer (``message``) to the question ``question`` that the browser's
    ``chat.send``, ``chat.regenerate`` or ``chat.edit`` (``client_id``) asked is being
    written."""
    return {
        "type": "chat.started",
        "conversation": conversation,
        "question": question,
        "message": message,
        "model": model,
        "client_id": client_id,
    }


def chat_delta(*, message: str, text: str) -> dict:
    """The next piece of the answer's text."""
    return {"type": "chat.delta", "message": message, "text": text}


def chat_done(
    *,
    message: str,
    finish_reason: str,
    usage: dict | None = None,
    citations: list | None = None,
    time_to_first_token_ms: int | None = None,
    duration_ms: int | None = None,
) -> dict:
    """The answer ended and is stored; ``finish_reason`` is stop, length, cancelled or error;
    ``citations`` are the document passages the answer was given (chat.retrieval). The
    timings are the worker's (None where it never answered)."""
    return {
        "type": "chat.done",
        "message": message,
        "finish_reason": finish_reason,
        "usage": usage or {},
        "citations": citations or [],
        "time_to_first_token_ms": time_to_first_token_ms,
        "duration_ms": duration_ms,
    }


@dataclass(frozen=True)
class ChatSend:
    conversation: uuid.UUID | None
    content: str
    client_id: str
    # The sampling fields the browser set, checked by SamplingParams.from_frame().
    params: dict
    # A new conversation's instructions (an existing one keeps its own settings).
    instructions: str = ""
    # Documents and collections to answer from (chat.retrieval); empty when none.
    sources: Sources = field(default_factory=Sources)
    # The model the person picked; None keeps the conversation's (or the site's default).
    model: str | None = None


@dataclass(frozen=True)
class ChatRegenerate:
    """A new version of the conversation's latest answer."""

    conversation: uuid.UUID
    client_id: str
    params: dict


@dataclass(frozen=True)
class ChatEdit:
    """Ask the question ``message`` of the conversation again as ``content``."""

    conversation: uuid.UUID
    message: uuid.UUID
    content: str
    client_id: str
    params: dict


@dataclass(frozen=True)
class ChatStop:
    conversation: uuid.UUID


def _uuid(value, field: str, client_id=None, what="conversation") -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ProtocolError(BAD_FRAME, f"`{field}` must be a {what} id.", client_id)


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


def parse(text: str | None) -> ChatSend | ChatRegenerate | ChatEdit | ChatStop:
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
    if kind == "chat.regenerate":
        _fields(frame, {"conversation", "client_id"}, {"params"}, client_id)
        _require_client_id(client_id)
        return ChatRegenerate(
            _uuid(frame["conversation"], "conversation", client_id),
            client_id,
            _params(frame, client_id),
        )
    if kind == "chat.edit":
        _fields(frame, {"conversation", "message", "content", "client_id"}, {"params"}, client_id)
        _require_client_id(client_id)
        return ChatEdit(
            _uuid(frame["conversation"], "conversation", client_id),
            _uuid(frame["message"], "message", client_id, what="message"),
            _content(frame, client_id),
            client_id,
            _params(frame, client_id),
        )
    if kind == "chat.stop":
        _fields(frame, {"conversation"}, set())
        return ChatStop(_uuid(frame["conversation"], "conversation"))
    raise ProtocolError(UNKNOWN_TYPE, f"Unknown frame type {str(kind)[:40]!r}.", client_id)


def _require_client_id(client_id) -> None:
    if client_id is None:
        raise ProtocolError(BAD_FRAME, "`client_id` must be a string.")


def _content(frame: dict, client_id) -> str:
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
    return content


def _params(frame: dict, client_id) -> dict:
    try:
        return SamplingParams.from_frame(frame.get("params", {}))
    except ValueError as error:
        raise ProtocolError(BAD_FRAME, str(error), client_id) from None


def _sources(frame: dict, client_id) -> Sources:
    """``sources: {documents: [ids], collections: [ids]}``, both lists optional."""
    value = frame.get("sources")
    if value is None:
        return Sources()
    if not isinstance(value, dict) or value.keys() - {"documents", "collections"}:
        raise ProtocolError(
            BAD_FRAME, "`sources` must look like {documents: [ids], collections: [ids]}.", client_id
        )
    lists = {}
    for name in ("documents", "collections"):
        ids = value.get(name, [])
        if not isinstance(ids, list) or len(ids) > MAX_SOURCE_IDS:
            raise ProtocolError(
                BAD_FRAME,
                f"`sources.{name}` must be a list of at most {MAX_SOURCE_IDS} ids.",
                client_id,
            )
        try:
            lists[name] = tuple(dict.fromkeys(str(uuid.UUID(i)) for i in ids))
        except (ValueError, TypeError, AttributeError):
            raise ProtocolError(
                BAD_FRAME, f"`sources.{name}` must hold document or collection ids.", client_id
            ) from None
    return Sources(**lists)


def _model(frame: dict, client_id) -> str | None:
    model = frame.get("model")
    if model is not None and (
        not isinstance(model, str) or not model.strip() or len(model) > MODEL_NAME_MAX
    ):
        raise ProtocolError(
            BAD_FRAME,
            f"`model` must be the name of a model, at most {MODEL_NAME_MAX} characters.",
            client_id,
        )
    return model


def _instructions(frame: dict, conversation, client_id) -> str:
    instructions = frame.get("instructions", "")
    if not instructions:
        return ""
    if conversation is not None:
        raise ProtocolError(
            BAD_FRAME,
            "`instructions` only come with a new conversation's first message; change an "
            "existing conversation's in its settings.",
            client_id,
        )
    if not isinstance(instructions, str):
        raise ProtocolError(BAD_FRAME, "`instructions` must be text.", client_id)
    if len(instructions) > INSTRUCTIONS_MAX:
        raise ProtocolError(
            TOO_LARGE,
            f"Instructions can be at most {INSTRUCTIONS_MAX} characters long; these are "
            f"{len(instructions)}.",
            client_id,
        )
    return instructions.strip()


def _chat_send(frame: dict, client_id) -> ChatSend:
    _fields(
        frame,
        {"conversation", "content", "client_id"},
        {"params", "instructions", "sources", "model"},
        client_id,
    )
    _require_client_id(client_id)
    content = _content(frame, client_id)
    conversation = frame["conversation"]
    conversation = None if conversation is None else _uuid(conversation, "conversation", client_id)
    return ChatSend(
        conversation,
        content,
        client_id,
        _params(frame, client_id),
        _instructions(frame, conversation, client_id),
        _sources(frame, client_id),
        _model(frame, client_id),
    )
