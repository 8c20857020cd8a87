"""Passages of about 1,000 characters along a document's structure.

A passage never spans two sections (a heading, a page): each section's paragraphs are packed
into passages up to ``TARGET_CHARS``, the next passage starting with the last paragraph (or
the last ``OVERLAP_CHARS``) of the one before, so a fact cut at a boundary is whole in one of
them. A passage keeps its section's page and starts with its heading, which both the model
and the embedding then see.
"""

import re
from dataclasses import dataclass

# About a page of prose: several facts with their context, and well inside the 256 word
# pieces (about 1,000 characters of English) that all-MiniLM-L6-v2 reads.
TARGET_CHARS = 1000
OVERLAP_CHARS = 150


@dataclass(frozen=True)
class Passage:
    page: int | None
    text: str


def _paragraphs(text: str) -> list[str]:
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        block = " ".join(block.split())
        while len(block) > TARGET_CHARS:
            cut = block.rfind(" ", 0, TARGET_CHARS)
            cut = cut if cut > TARGET_CHARS // 2 else TARGET_CHARS
            paragraphs.append(block[:cut].strip())
            block = block[cut:].strip()
        if block:
            paragraphs.append(block)
    return paragraphs


def _tail(text: str) -> str:
    if len(text) <= OVERLAP_CHARS:
        return text
    cut = text.find(" ", len(text) - OVERLAP_CHARS)
    return text[cut + 1 :] if cut != -1 else text[-OVERLAP_CHARS:]


def chunk_sections(sections) -> list[Passage]:
    """Passages of ``sections`` (``[page, heading, text]`` each), in reading order."""
    passages = []
    for page, heading, text in sections:
        prefix = f"{heading}\n\n" if heading else ""
        current: list[str] = []
        for paragraph in _paragraphs(text or ""):
            if current and len(prefix) + sum(len(p) + 2 for p in current) + len(paragraph) > (
                TARGET_CHARS
            ):
                passages.append(Passage(page, prefix + "\n\n".join(current)))
                current = [_tail(current[-1])]
            current.append(paragraph)
        if current:
            passages.append(Passage(page, prefix + "\n\n".join(current)))
    return passages
