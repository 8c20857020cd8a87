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
# about 0.6 % per query word ((1 - e^(-4/12))^4), so a search decrypts well under 1 % of a
# user's messages that do not match.
BITS_PER_TOKEN = 12
HASHES = 4
# Filters grow in steps of 64 bits, from 64 to 64 Kibit (8 KiB, a very long answer).
BITS_STEP = 64
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


def _hashes(key: bytes, token: str) -> list[int]:
    digest = hashlib.blake2b(token.encode("utf-8"), key=key, digest_size=4 * HASHES).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "little") for i in range(HASHES)]


def bits_for(text: str) -> bytes:
    """The stored filter of ``text``: the key's fingerprint, then the bits."""
    key = _key()
    tokens = _tokens(text or "")
    wanted = max(1, len(tokens)) * BITS_PER_TOKEN
    size = min(MAX_BITS, math.ceil(wanted / BITS_STEP) * BITS_STEP)
    value = 0
    for token in tokens:
        for number in _hashes(key, token):
            value |= 1 << (number % size)
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
        self.hashes = [number for word in query.words for number in _hashes(key, word[:PREFIX_MAX])]
        self._checks: dict[int, tuple] = {}

    def _checks_for(self, size: int) -> tuple:
        """(byte index, bit mask) of every bit the query needs in a filter of ``size`` bits."""
        checks = self._checks.get(size)
        if checks is None:
            wanted = {}
            for number in self.hashes:
                position = number % size
                index = FINGERPRINT_BYTES + (position >> 3)
                wanted[index] = wanted.get(index, 0) | 1 << (position & 7)
            checks = tuple(wanted.items())
            self._checks[size] = checks
        return checks

    def fetched_may_match(self, length, fingerprint, fetched) -> bool:
        """``may_match`` from what the database cut out of a filter: its length, its first
        bytes and the byte holding each of ``self.hashes`` (``byte_index()``), in order."""
        if length is None or bytes(fingerprint) != self.fingerprint:
            return True  # No bits yet, or under another key: decrypt and see.
        size = (length - FINGERPRINT_BYTES) * 8
        for number, byte in zip(self.hashes, fetched, strict=True):
            if not byte or not byte[0] >> (number % size & 7) & 1:
                return False
        return True

    def may_match(self, stored) -> bool:
        """False only when the row certainly does not hold every word."""
        if not stored:
            return True  # No bits yet: decrypt and see.
        if not isinstance(stored, bytes):
            stored = bytes(stored)  # PostgreSQL hands out memoryviews.
        if not stored.startswith(self.fingerprint):
            return True  # Bits under another key (a rotation in progress): decrypt and see.
        # Only the bytes holding the query's bits are read, not the whole filter.
        for index, mask in self._checks_for((len(stored) - FINGERPRINT_BYTES) * 8):
            if stored[index] & mask != mask:
                return False
        return True


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
