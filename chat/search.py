"""Search over a user's own conversations without writing their words anywhere.

Titles and messages are encrypted, and decrypting every message of a user with thousands of
conversations takes longer than a search may. So each title and message also stores a keyed
Bloom filter of its words (``search_bits``): the positions of bits set come from an HMAC,
under a key derived from the chat keyring's first key (keyed BLAKE2b), of each word's beginnings (2 to
``PREFIX_MAX`` characters, case-folded). Without the key the bits say nothing about which
words they hold; they are no plaintext and no list of words. A search reads these bits for
the user's rows (no decryption), keeps the rows whose bits hold every word of the query, then
decrypts only those to confirm the match (Bloom filters have false positives, never false
negatives) and to cut a snippet. A row without bits, or with bits under an older key (a key
rotation in progress), is decrypted and checked directly, so it is never missed.

A word of the query matches a word of the text that begins with it: "capit" finds
"Capital". The query itself is never stored or logged; the page sends it in a POST body.
"""

import base64
import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Word beginnings up to this long are indexed; a longer query word is looked up by its
# first PREFIX_MAX characters and confirmed against the decrypted text.
PREFIX_MIN = 2
PREFIX_MAX = 10
# Bits per indexed word beginning and bits set per beginning: a false positive rate of
# about 3 % per query word, so a search decrypts a few percent of a user's messages at most.
BITS_PER_TOKEN = 8
HASHES = 3
MIN_BITS = 64
MAX_BITS = 1 << 16
FINGERPRINT_BYTES = 4
# How many results a search returns, and the characters of context around a match.
RESULTS_MAX = 50
SNIPPET_CONTEXT = 70
QUERY_WORDS_MAX = 8
QUERY_CHARS_MAX = 200

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def _tokens(text: str) -> set[str]:
    tokens = set()
    for word in words(text):
        for length in range(PREFIX_MIN, min(len(word), PREFIX_MAX) + 1):
            tokens.add(word[:length])
    return tokens


@lru_cache(maxsize=4)
def _index_key(primary: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"chat search index").derive(
        base64.urlsafe_b64decode(primary)
    )


def _key() -> bytes:
    return _index_key(settings.CHAT_KEYRING[0])


@lru_cache(maxsize=4)
def _fingerprint(key: bytes) -> bytes:
    return hashlib.blake2b(b"fingerprint", key=key, digest_size=FINGERPRINT_BYTES).digest()


def _positions(key: bytes, token: str, size: int) -> list[int]:
    digest = hashlib.blake2b(token.encode("utf-8"), key=key, digest_size=4 * HASHES).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "little") % size for i in range(HASHES)]


def bits_for(text: str) -> bytes:
    """The stored filter of ``text``: the key's fingerprint, then the bits."""
    key = _key()
    tokens = _tokens(text or "")
    wanted = max(MIN_BITS, len(tokens) * BITS_PER_TOKEN)
    size = min(MAX_BITS, 1 << math.ceil(math.log2(wanted)))
    value = 0
    for token in tokens:
        for position in _positions(key, token, size):
            value |= 1 << position
    return _fingerprint(key) + value.to_bytes(size // 8, "little")


class QueryInvalid(ValueError):
    """The query cannot be searched for; the message says what to type instead."""


@dataclass(frozen=True)
class Query:
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text) -> "Query":
        if not isinstance(text, str) or not text.strip():
            raise QueryInvalid("Type a word to search for.")
        if len(text) > QUERY_CHARS_MAX:
            raise QueryInvalid(f"Search for at most {QUERY_CHARS_MAX} characters.")
        found = tuple(dict.fromkeys(words(text)))
        if not found:
            raise QueryInvalid("Type letters or digits to search for.")
        if len(found) > QUERY_WORDS_MAX:
            raise QueryInvalid(f"Search for at most {QUERY_WORDS_MAX} words.")
        if any(len(word) < PREFIX_MIN for word in found):
            raise QueryInvalid(f"Each word you search for needs at least {PREFIX_MIN} characters.")
        return cls(found)

    def filter(self) -> "Filter":
        return Filter(self, _key())

    def pattern(self) -> re.Pattern:
        """A match of any query word at the start of a word of the text."""
        alternatives = "|".join(
            re.escape(word) for word in sorted(self.words, key=len, reverse=True)
        )
        return re.compile(rf"(?<!\w)(?:{alternatives})", re.IGNORECASE)

    def matches(self, text: str) -> bool:
        found = set(words(text))
        return all(any(w.startswith(q) for w in found) for q in self.words)


class Filter:
    """Tells from stored bits whether a row may hold every word of the query."""

    def __init__(self, query: Query, key: bytes):
        self.fingerprint = _fingerprint(key)
        self.tokens = [word[:PREFIX_MAX] for word in query.words]
        self.key = key
        self._masks: dict[int, int] = {}

    def _mask(self, size: int) -> int:
        mask = self._masks.get(size)
        if mask is None:
            mask = 0
            for token in self.tokens:
                for position in _positions(self.key, token, size):
                    mask |= 1 << position
            self._masks[size] = mask
        return mask

    def may_match(self, stored) -> bool:
        """False only when the row certainly does not hold every word."""
        if not stored or bytes(stored[:FINGERPRINT_BYTES]) != self.fingerprint:
            return True  # No bits, or bits under another key: decrypt and see.
        bits = bytes(stored[FINGERPRINT_BYTES:])
        mask = self._mask(len(bits) * 8)
        return int.from_bytes(bits, "little") & mask == mask


def snippet(text: str, pattern: re.Pattern) -> dict:
    """The part of ``text`` around its first match, with the ranges of every match in it."""
    first = pattern.search(text)
    start = 0 if first is None else max(0, first.start() - SNIPPET_CONTEXT)
    end = len(text) if first is None else min(len(text), first.end() + SNIPPET_CONTEXT)
    # Cut at spaces rather than inside words.
    if start > 0:
        space = text.find(" ", start, first.start())
        start = space + 1 if space != -1 else start
    if end < len(text):
        space = text.rfind(" ", first.end(), end)
        end = space if space != -1 else end
    part = " ".join(text[start:end].split("\n"))
    return {
        "text": part,
        "before": start > 0,
        "after": end < len(text),
        "matches": [[m.start(), m.end()] for m in pattern.finditer(part)],
    }
