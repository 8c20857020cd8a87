"""Encrypted vectors, and exact search over the ones a user may read.

A chunk's vector is stored as base64 float32 inside an EncryptedTextField. Searching decrypts
the vectors of the documents the query may use into one matrix per document, kept in a
bounded in-process cache keyed by the document and the moment its index was completed, so a
re-indexed document is never scored with its old vectors and a deleted one is dropped
(``forget``, and anyway never asked for again: the allowed documents come from the database
on every query). Scoring is exact: one matrix product, no approximate index.
"""

import base64
import threading
from collections import OrderedDict

import numpy as np
from django.conf import settings

from core import datakeys


def encode(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode(text: str, dimensions: int) -> np.ndarray:
    vector = np.frombuffer(base64.b64decode(text), dtype="<f4")
    if vector.shape != (dimensions,):
        raise ValueError(f"A stored vector has {vector.size} values, not {dimensions}.")
    return vector


class VectorCache:
    """Decrypted matrices of recently searched documents, at most ``max_chunks`` rows in all
    (each row 1.5 KB), least recently used dropped first."""

    def __init__(self, max_chunks: int):
        self.max_chunks = max_chunks
        self._entries: OrderedDict = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, document_id, version):
        with self._lock:
            entry = self._entries.get(document_id)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(document_id)
            return entry[1], entry[2]

    def put(self, document_id, version, chunk_ids, matrix) -> None:
        with self._lock:
            self._drop(document_id)
            if len(chunk_ids) > self.max_chunks:
                return
            self._entries[document_id] = (version, chunk_ids, matrix)
            self._rows += len(chunk_ids)
            while self._rows > self.max_chunks:
                oldest = next(iter(self._entries))
                self._drop(oldest)

    def _drop(self, document_id) -> None:
        entry = self._entries.pop(document_id, None)
        if entry is not None:
            self._rows -= len(entry[1])

    def forget(self, document_id) -> None:
        with self._lock:
            self._drop(document_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._rows = 0

    @property
    def rows(self) -> int:
        return self._rows


cache = VectorCache(settings.DOCUMENTS_VECTOR_CACHE_CHUNKS)


def forget(document_id) -> None:
    cache.forget(document_id)


def matrix_of(document, dimensions: int) -> tuple[list[int], np.ndarray]:
    """Chunk ids and their vectors (one row each) of a ready document's current index (the
    passages its ``embedding_model`` made; not those of an index still being written), each
    vector of ``dimensions`` values."""
    version = (document.indexed_at, document.embedding_model)
    cached = cache.get(document.pk, version)
    if cached is not None:
        return cached
    rows = [
        (pk, vector)
        for pk, vector in document.chunks.filter(embedding_model=document.embedding_model)
        .order_by("position")
        .values_list("pk", "vector")
        # A document erased after the backup this database came from: nothing to score.
        if not isinstance(vector, datakeys.Erased)
    ]
    chunk_ids = [pk for pk, _ in rows]
    matrix = (
        np.stack([decode(vector, dimensions) for _, vector in rows])
        if rows
        else np.zeros((0, dimensions), dtype=np.float32)
    )
    cache.put(document.pk, version, chunk_ids, matrix)
    return chunk_ids, matrix
