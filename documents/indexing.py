"""The indexing job: text, passages and vectors of a queued document, off the request path.

The document row is the job. A worker claims the oldest queued document (or one whose
worker stopped renewing its lease: it died or was restarted) with a conditional UPDATE, so
two workers never index the same document, and renews the lease while it works. Each claim
counts as an attempt; a document that could not be finished in ``MAX_ATTEMPTS`` claims ends
``failed`` with a reason instead of staying ``indexing`` forever. Nothing is lost when a
process stops: the file is in the database until indexing is complete and after.

Passages are embedded and written a batch at a time, each batch in its own transaction and
tagged with the identity of the model that embedded it (documents.embedding), beside any
index the document already has. When all of them are written, one transaction switches the
document to them (its ``embedding_model`` and ``indexed_at``) and deletes the passages of
its old index. So a document indexed again for a new embedding model stays ``ready`` and
is searched in its old index (with the previous model, documents.search) until the switch;
a worker that stops or dies half-way leaves passages that no index uses, which the next
worker deletes before it starts again.

The embedded profile runs one worker thread inside the web process
(``ensure_indexing_thread``); the production profile runs ``manage.py index_documents``
processes, any number, on any host that reaches the database.
"""

import base64
import datetime
import logging
import threading
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.log import record
from core import datakeys
from documents import vectors
from documents.chunking import chunk_sections
from documents.embedding import (
    BATCH_SIZE,
    PACKAGED_MODEL_NAME,
    EmbeddingModel,
    current,
    embed_texts,
)
from documents.extraction import ExtractionFailed, extract
from documents.models import Chunk, Document, DocumentFile

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
# A ready document whose indexing again for a new embedding model failed keeps its old index
# and is tried again this much later, not in a loop: what failed now rarely works a minute on.
RETRY_OUTDATED_AFTER = datetime.timedelta(days=1)
# Passages embedded and written per transaction: a few forward passes, a few seconds of work
# that a stopped worker loses at most.
WRITE_EVERY = BATCH_SIZE * 4
INTERRUPTED = (
    "Indexing was interrupted three times (a server restarted or ran out of memory); "
    "upload the file again, and tell your IT team if it keeps happening."
)
# A database restored from a backup older than the document's deletion: its key is gone.
ERASED_FILE = "This document was deleted; its file can no longer be read."
NO_TEXT = "No text was found in the file (a scanned PDF has only images); upload a text version."


class _Gone(Exception):
    """The document was deleted, or another worker took it over, while this one worked."""


def _lease() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.DOCUMENTS_LEASE_SECONDS)


def _free(now):
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _outdated(model: EmbeddingModel) -> Q:
    """Ready documents whose index another model made (EmbeddingModel.made, as a query)."""
    same = Q(embedding_model__endswith=f"@{model.fingerprint}")
    if model.name == PACKAGED_MODEL_NAME:
        same |= Q(embedding_model=PACKAGED_MODEL_NAME)
    return Q(status=Document.Status.READY) & ~same


def claim(worker: str) -> Document | None:
    """The next document to index, held for this worker; None when there is none.

    Queued documents first, then those whose worker died, then ready documents indexed with
    another embedding model than the current one: those are indexed again in the background
    and stay ``ready`` meanwhile, their old passages replaced only once the new ones are
    complete."""
    now = timezone.now()
    waiting = Q(status=Document.Status.QUEUED) | Q(
        status=Document.Status.INDEXING, lease_until__lt=now
    )
    outdated = _outdated(current())
    candidates = [
        *Document.objects.filter(waiting).order_by("created_at")[:10],
        *Document.objects.filter(outdated & _free(now)).order_by("created_at")[:10],
    ]
    for candidate in candidates:
        if candidate.attempts >= MAX_ATTEMPTS and candidate.status != Document.Status.READY:
            _fail(candidate, INTERRUPTED, expected_lease=candidate.lease_until)
            continue
        if candidate.status == Document.Status.READY:
            changes = {"lease_until": _lease(), "attempts": 1, "progress": 0}
        else:
            changes = {
                "lease_until": _lease(),
                "attempts": F("attempts") + 1,
                "status": Document.Status.INDEXING,
                "progress": 0,
            }
        taken = Document.objects.filter(
            pk=candidate.pk, status=candidate.status, lease_until=candidate.lease_until
        ).update(**changes)
        if taken:
            candidate.refresh_from_db()
            logger.info("indexing %s (attempt %s) in %s", candidate.pk, candidate.attempts, worker)
            return candidate
    return None


def _renew(document: Document, progress: int) -> None:
    lease = _lease()
    if not Document.objects.filter(pk=document.pk, lease_until=document.lease_until).update(
        progress=progress, lease_until=lease
    ):
        raise _Gone
    document.lease_until, document.progress = lease, progress


def _leave(document: Document) -> None:
    """Hand a claimed document back (this worker stops): the next worker takes it at once."""
    Document.objects.filter(pk=document.pk, lease_until=document.lease_until).update(
        lease_until=timezone.now()
    )


def _fail(document: Document, reason: str, *, expected_lease) -> None:
    if document.status == Document.Status.READY:
        # Indexing again for a new embedding model failed: the document keeps its old index.
        with transaction.atomic():
            if Document.objects.filter(pk=document.pk, lease_until=expected_lease).update(
                lease_until=timezone.now() + RETRY_OUTDATED_AFTER, progress=100
            ):
                _drop_unused_passages(document)
        logger.warning("indexing %s again failed: %s", document.pk, reason)
        return
    with transaction.atomic():
        if Document.objects.filter(pk=document.pk, lease_until=expected_lease).update(
            status=Document.Status.FAILED, failure_reason=reason[:300], lease_until=None
        ):
            _drop_unused_passages(document)
            record(
                "document.failed",
                actor=document.owner,
                target=document,
                outcome="failure",
                kind=document.kind,
                reason=reason[:300],
            )


def _drop_unused_passages(document: Document) -> None:
    """Passages of no index the document uses: written by a worker that stopped half-way."""
    Chunk.objects.filter(document_id=document.pk).exclude(
        embedding_model=document.embedding_model
    ).delete()


def _still_ours(document: Document) -> Document:
    """The document's row, locked until the transaction ends, if this worker still holds it."""
    held = (
        Document.objects.select_for_update()
        .filter(pk=document.pk, status__in=[Document.Status.INDEXING, Document.Status.READY])
        .first()
    )
    if held is None or held.lease_until != document.lease_until:
        raise _Gone
    return held


def index(document: Document, *, stop_requested: Callable[[], bool] = lambda: False) -> None:
    """Extract, chunk, embed and store one claimed document; ends ready or failed, or handed
    back when ``stop_requested()`` (asked after each batch of passages is written) is true."""
    model = current()
    try:
        stored = DocumentFile.objects.get(document=document).data
        if isinstance(stored, datakeys.Erased):
            _fail(document, ERASED_FILE, expected_lease=document.lease_until)
            return
        data = base64.b64decode(stored)
        try:
            sections, pages = extract(document.kind, data)
        except ExtractionFailed as exc:
            _fail(document, str(exc), expected_lease=document.lease_until)
            return
        del data
        passages = chunk_sections(sections)
        if not passages:
            _fail(document, NO_TEXT, expected_lease=document.lease_until)
            return
        with transaction.atomic():
            _still_ours(document)
            _drop_unused_passages(document)
        _renew(document, 10)
        for start in range(0, len(passages), WRITE_EVERY):
            batch = passages[start : start + WRITE_EVERY]
            matrix = embed_texts([p.text for p in batch], model)
            _write(document, model, start, batch, matrix)
            written = start + len(batch)
            _renew(document, 10 + int(85 * written / len(passages)))
            if written < len(passages) and stop_requested():
                _leave(document)
                logger.info("indexing %s stopped after %s passages", document.pk, written)
                return
        _switch(document, model, len(passages), pages)
    except (_Gone, DocumentFile.DoesNotExist):
        logger.info("document %s was deleted or taken over while indexing", document.pk)


def _write(document: Document, model: EmbeddingModel, start: int, batch, matrix) -> None:
    """One batch of new passages, beside the document's current index."""
    with transaction.atomic():
        _still_ours(document)
        Chunk.objects.bulk_create(
            Chunk(
                document=document,
                position=start + offset,
                page=passage.page,
                passage=passage.text,
                vector=vectors.encode(vector),
                embedding_model=model.identity,
            )
            for offset, (passage, vector) in enumerate(zip(batch, matrix, strict=True))
        )


def _switch(document: Document, model: EmbeddingModel, passages: int, pages) -> None:
    """The document's new index replaces its old one, all at once."""
    with transaction.atomic():
        old = _still_ours(document).embedding_model
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.READY,
            progress=100,
            pages=pages,
            embedding_model=model.identity,
            indexed_at=timezone.now(),
            lease_until=None,
            failure_reason="",
        )
        Chunk.objects.filter(document_id=document.pk).exclude(
            embedding_model=model.identity
        ).delete()
        details = {"previous_embedding_model": old} if old and old != model.identity else {}
        record(
            "document.indexed",
            actor=document.owner,
            target=document,
            chunk_count=passages,
            pages=pages,
            embedding_model=model.identity,
            **details,
        )
    vectors.forget(document.pk)


def run_pending(
    worker: str = "inline",
    *,
    limit: int | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> int:
    """Index waiting documents until there are none (or ``limit``, or ``stop_requested()``);
    returns how many were taken."""
    done = 0
    while (limit is None or done < limit) and not stop_requested():
        document = claim(worker)
        if document is None:
            break
        index(document, stop_requested=stop_requested)
        done += 1
    return done


def run_worker(stop: threading.Event, *, worker: str, poll_seconds: float = 2.0) -> None:
    """Index documents until ``stop`` is set; survives a database that stops answering."""
    while not stop.is_set():
        try:
            close_old_connections()
            busy = run_pending(worker, limit=1, stop_requested=stop.is_set)
        except Exception:
            logger.exception("the indexing worker %s met an error; it goes on", worker)
            busy = 0
        finally:
            close_old_connections()
        if not busy:
            stop.wait(poll_seconds)


_thread_lock = threading.Lock()
_thread: threading.Thread | None = None
_stop = threading.Event()


def ensure_indexing_thread() -> None:
    """In the embedded profile, start the web process's indexing thread once."""
    global _thread
    if not settings.DOCUMENTS_INDEX_IN_WEB:
        return
    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(
            target=run_worker,
            args=(_stop,),
            kwargs={"worker": "web"},
            name="document-indexing",
            daemon=True,
        )
        _thread.start()
