"""One-line labels people give things (conversation titles, usernames) without invisible
characters.

Control and format characters (Unicode categories Cc, Cf and Cs: NUL, escape codes, zero-
width characters, and the bidirectional overrides and isolates U+202A to U+202E and
U+2066 to U+2069) do not show as themselves: an override turns the rest of a sidebar line or an
audit row around, and NUL cuts text short in logs and C libraries.
"""

import unicodedata

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def invisible_characters(text: str) -> list[str]:
    """The control and format characters in ``text``, as U+XXXX, in order, once each."""
    found = []
    for character in text:
        if unicodedata.category(character) in INVISIBLE_CATEGORIES:
            code = f"U+{ord(character):04X}"
            if code not in found:
                found.append(code)
    return found


def one_line_label(text: str) -> str:
    """``text`` on one line: control and format characters dropped (line breaks and tabs
    become spaces), runs of white space made one space, no space at either end."""
    kept = "".join(
        (" " if character.isspace() else "")
        if unicodedata.category(character) in INVISIBLE_CATEGORIES
        else character
        for character in text
    )
    return " ".join(kept.split())
