"""A /v1/chat/completions body, checked at the edge: OpenAI's fields and bounds, answered
with OpenAI's 400 error objects; fields OpenAI accepts that this site does not use are
ignored."""

from dataclasses import dataclass

from django.conf import settings

from api.errors import bad_request
from chat.inference.params import SamplingParams

# Roles a caller may send. The model takes user and assistant turns after the site's own
# instructions, so system (and developer) text is put before the first user message.
TURN_ROLES = ("user", "assistant")
INSTRUCTION_ROLES = ("system", "developer")
# OpenAI allows at most four stop sequences.
MAX_STOP = 4
MAX_MESSAGES = 1000


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict]
    params: dict
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool


def _text(content, index: int) -> str:
    """A message's text: a string, or OpenAI's list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(
                    "Only text content parts are supported; send each part as "
                    '{"type": "text", "text": "..."}.',
                    f"messages[{index}].content",
                )
            if not isinstance(part.get("text"), str):
                raise bad_request(
                    "A text content part needs a string 'text'.", f"messages[{index}].content"
                )
            parts.append(part["text"])
        return "".join(parts)
    raise bad_request(
        "A message's content must be a string or a list of text parts.",
        f"messages[{index}].content",
    )


def _turns(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of messages.", "messages")
    if len(messages) > MAX_MESSAGES:
        raise bad_request(f"Send at most {MAX_MESSAGES} messages.", "messages")
    instructions, turns = [], []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request("Each message must be an object.", f"messages[{index}]")
        role = message.get("role")
        if role not in TURN_ROLES + INSTRUCTION_ROLES:
            raise bad_request(
                f"{role!r} is not a role this site takes; use system, user or assistant.",
                f"messages[{index}].role",
            )
        text = _text(message.get("content"), index)
        if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
            raise bad_request(
                f"A message may be at most {settings.CHAT_MAX_MESSAGE_CHARS} characters long.",
                f"messages[{index}].content",
            )
        if role in INSTRUCTION_ROLES:
            instructions.append(text)
        else:
            turns.append({"role": role, "content": text})
    if not turns or turns[-1]["role"] != "user":
        raise bad_request("The last message must be the user's.", "messages")
    if instructions:
        first = next(i for i, turn in enumerate(turns) if turn["role"] == "user")
        joined = "\n\n".join([*instructions, turns[first]["content"]])
        turns[first] = {"role": "user", "content": joined}
    return turns


def _stop(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        raise bad_request("'stop' must be a non-empty string or a list of them.", "stop")
    if len(items) > MAX_STOP:
        raise bad_request(f"'stop' may hold at most {MAX_STOP} sequences.", "stop")
    return tuple(items)


def _flag(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"'{name}' must be true or false.", name)
    return value


def parse(body) -> ChatRequest:
    """The request ``body`` holds, or ApiError (400) naming the field."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: one of the names /v1/models lists.", "model")
    turns = _turns(body.get("messages"))
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("This site makes one choice per request; leave 'n' at 1.", "n")
    max_tokens = body.get("max_completion_tokens")
    length_field = "max_completion_tokens"
    if max_tokens is None:
        max_tokens, length_field = body.get("max_tokens"), "max_tokens"
    values = {
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_new_tokens": max_tokens,
    }
    for name, value in values.items():
        if value is None:
            continue
        field = length_field if name == "max_new_tokens" else name
        try:
            SamplingParams.from_request({name: value})
        except ValueError as error:
            message = str(error).replace("max_new_tokens", field)
            raise bad_request(message, field) from None
    params = {name: value for name, value in values.items() if value is not None}
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    stream = _flag(body, "stream")
    include_usage = _flag(options or {}, "include_usage")
    if options is not None and not stream:
        raise bad_request("'stream_options' is only allowed with 'stream': true.", "stream_options")
    return ChatRequest(
        model=model,
        messages=turns,
        params=params,
        stop=_stop(body.get("stop")),
        stream=stream,
        include_usage=include_usage,
    )
