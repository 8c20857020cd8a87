"""Passages for a question, from the documents the asking user may read: chat's retrieval
provider (chat.retrieval), registered when the app starts.

The user's rights are part of the query that picks the documents (``readable_documents``),
so a passage of a document the user may not read is never decrypted, let alone scored.
"""

import numpy as np
from django.conf import settings
from django.db.models import Q

from chat.retrieval import Sources, SourcesRefused
from documents.embedding import EMBEDDING_MODEL_NAME, embed_texts
from documents.models import Chunk, Document
from documents.services import readable_collections, readable_documents
from documents.vectors import matrix_of

NOT_FOUND = (
    "One of the documents or collections attached to your message does not exist or is not "
    "yours to read; remove it and send again."
)


def _documents(user, sources: Sources):
    readable = readable_documents(user)
    found = set(map(str, readable.filter(pk__in=sources.documents).values_list("pk", flat=True)))
    collections = readable_collections(user).filter(pk__in=sources.collections)
    if len(found) != len(sources.documents) or collections.count() != len(sources.collections):
        raise SourcesRefused(NOT_FOUND)
    return readable.filter(
        Q(pk__in=sources.documents) | Q(collection__in=collections.values("pk")),
        status=Document.Status.READY,
        embedding_model=EMBEDDING_MODEL_NAME,
    )


class DocumentSearch:
    """Exact cosine search over the decrypted vectors of the allowed documents."""

    def retrieve(self, user, question: str, sources: Sources, *, max_chars: int) -> list[dict]:
        documents = {
            d.pk: d
            for d in _documents(user, sources).only("pk", "name", "indexed_at", "embedding_model")
        }
        if not documents:
            return []
        query = embed_texts([question])[0]
        scored = []
        for document in documents.values():
            chunk_ids, matrix = matrix_of(document)
            if not chunk_ids:
                continue
            scores = matrix @ query
            best = np.argsort(-scores)[: settings.RETRIEVAL_TOP_K]
            scored.extend((float(scores[i]), chunk_ids[i]) for i in best)
        scored.sort(reverse=True)
        chosen = [
            (score, pk)
            for score, pk in scored[: settings.RETRIEVAL_TOP_K]
            if score >= settings.RETRIEVAL_MIN_SCORE
        ]
        chunks = Chunk.objects.in_bulk([pk for _score, pk in chosen])
        citations, used = [], 0
        for score, pk in chosen:
            chunk = chunks.get(pk)
            if chunk is None or chunk.document_id not in documents:
                continue
            if used + len(chunk.passage) > max_chars:
                if citations:
                    break
                quote = chunk.passage[:max_chars]
            else:
                quote = chunk.passage
            used += len(quote)
            citations.append(
                {
                    "document": str(chunk.document_id),
                    "name": documents[chunk.document_id].name,
                    "page": chunk.page,
                    "quote": quote,
                    "score": round(score, 3),
                }
            )
        return citations
