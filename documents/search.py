"""Passages for a question, from the documents the asking user may read: chat's retrieval
provider (chat.retrieval), registered when the app starts.

The user's rights are part of the query that picks the documents (``readable_documents``),
so a passage of a document the user may not read is never decrypted, let alone scored.

Each document is searched in the index it has now, with the question embedded by the model
that made that index: the current embedding model, or, for a document not yet indexed again
since the model changed, the previous one (documents.embedding). A document whose index
neither model made cannot be searched; the question is refused with a sentence that names
it, rather than answered as if the document said nothing.
"""

import logging

import numpy as np
from django.conf import settings
from django.db.models import Q

from chat.retrieval import Sources, SourcesRefused, SourcesUnsearchable
from core.labels import one_line_label
from documents.embedding import embed_texts, model_for, searchable
from documents.models import Chunk, Document
from documents.services import readable_collections, readable_documents
from documents.vectors import matrix_of

logger = logging.getLogger(__name__)

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
    )


def unsearchable(names: list[str]) -> str:
    quoted = ", ".join(f"\u201c{one_line_label(name)}\u201d" for name in sorted(names)[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return (
        f"{quoted}{more} cannot be searched right now: the site changed its embedding model, "
        "and the model that indexed it before is not available while it is indexed again. "
        "Try again when its indexing is finished, or remove it from your message; tell your "
        "IT team if this lasts."
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
        models, by_model, missing = searchable(), {}, []
        for document in documents.values():
            model = model_for(document.embedding_model, models)
            if model is None:
                missing.append(document)
            else:
                by_model.setdefault(model, []).append(document)
        if missing:
            logger.error(
                "cannot search %s document(s) indexed with %s: neither EMBEDDING_MODEL_DIR nor "
                "EMBEDDING_PREVIOUS_MODEL_DIR holds that model; they are searchable again once "
                "indexed with the current one",
                len(missing),
                ", ".join(sorted({d.embedding_model for d in missing})),
            )
            raise SourcesUnsearchable(unsearchable([str(d.name) for d in missing]))
        scored = []
        for model, group in by_model.items():
            query = embed_texts([question], model)[0]
            scored.extend(self._scored(group, query, model.dimensions))
        return self._citations(scored, documents, max_chars=max_chars)

    def _scored(self, documents, query, dimensions: int) -> list[tuple[float, int]]:
        scored = []
        for document in documents:
            chunk_ids, matrix = matrix_of(document, dimensions)
            if not chunk_ids:
                continue
            scores = matrix @ query
            best = np.argsort(-scores)[: settings.RETRIEVAL_TOP_K]
            scored.extend((float(scores[i]), chunk_ids[i]) for i in best)
        return scored

    def _citations(self, scored, documents, *, max_chars: int) -> list[dict]:
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
