"""JSON from outside (a request body, a socket frame), parsed without surprises.

``parse_json()`` answers every malformed input with ``JSONInputError`` and a plain sentence:
text that is not UTF-8 or not JSON, ``NaN`` and ``Infinity`` (not JSON, though Python reads
them), nesting deeper than MAX_DEPTH (so neither the parser nor any code walking the result
can run out of stack), and lone surrogate escapes such as ``"\\ud800"``, which Python reads
into strings that no database, encoder or browser can take.
"""

import json

# The deepest structure any of the project's inputs has is two levels (a frame's `params`);
# 32 leaves room and stays far below Python's recursion limit.
MAX_DEPTH = 32

NOT_JSON = "That is not valid JSON."
NOT_UTF8 = "That is not UTF-8 text; send JSON encoded as UTF-8."
TOO_DEEP = f"That JSON is nested more than {MAX_DEPTH} levels deep; send a flatter object."
LONE_SURROGATE = (
    "That JSON has a lone surrogate escape (such as \\ud800), which is not a character; "
    "send the text itself, or a pair of escapes for one character."
)


class JSONInputError(ValueError):
    """Input that is not acceptable JSON; ``str()`` is a sentence to show the sender."""


def _refuse_constant(name: str):
    raise JSONInputError(NOT_JSON)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check(value) -> None:
    """Depth and strings of a parsed value, without recursion."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _has_lone_surrogate(item):
                raise JSONInputError(LONE_SURROGATE)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise JSONInputError(TOO_DEEP)
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def parse_json(data: str | bytes):
    """The value ``data`` holds, or JSONInputError with a sentence saying what is wrong."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONInputError(NOT_UTF8) from None
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONInputError(TOO_DEEP) from None
    except JSONInputError:
        raise
    except ValueError:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise JSONInputError(NOT_JSON) from None
    _check(value)
    return value
