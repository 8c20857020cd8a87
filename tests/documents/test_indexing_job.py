"""The indexing job survives a worker that dies, and never leaves a document indexing."""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from documents import indexing, services
from documents.embedding import current
from documents.models import Chunk, Document

pytestmark = pytest.mark.django_db


def _die_while_indexing(document):
    """A worker claims the document and is killed before it finishes: its lease runs out."""
    claimed = indexing.claim("doomed-worker")
    assert claimed.pk == document.pk
    assert Document.objects.get(pk=document.pk).status == "indexing"
    Document.objects.filter(pk=document.pk).update(
        lease_until=timezone.now() - datetime.timedelta(seconds=1)
    )


def test_a_document_whose_worker_died_is_indexed_by_the_next_one(employee):
    document = services.upload(actor=employee, name="a.txt", data=b"Parking is on level 3.")
    _die_while_indexing(document)

    assert indexing.run_pending("restarted-worker") == 1

    document.refresh_from_db()
    assert (document.status, document.attempts, document.progress) == ("ready", 2, 100)
    assert Chunk.objects.filter(document=document).count() == 1


def test_a_claim_still_held_by_a_live_worker_is_left_alone(employee):
    document = services.upload(actor=employee, name="a.txt", data=b"Parking is on level 3.")
    indexing.claim("live-worker")

    assert indexing.claim("second-worker") is None
    assert Document.objects.get(pk=document.pk).status == "indexing"


def test_a_document_interrupted_three_times_fails_with_a_reason(employee):
    document = services.upload(actor=employee, name="a.txt", data=b"Parking is on level 3.")
    for _ in range(indexing.MAX_ATTEMPTS):
        _die_while_indexing(document)

    assert indexing.run_pending("next-worker") == 0

    document.refresh_from_db()
    assert document.status == "failed"
    assert "interrupted three times" in document.failure_reason
    assert AuditEvent.objects.filter(action="document.failed").exists()


def test_a_document_deleted_while_indexing_leaves_nothing(employee):
    document = services.upload(actor=employee, name="a.txt", data=b"Parking is on level 3.")
    claimed = indexing.claim("worker")
    services.delete(actor=employee, document=Document.objects.get(pk=document.pk))

    indexing.index(claimed)

    assert not Document.objects.exists() and not Chunk.objects.exists()


def test_the_worker_command_indexes_what_waits(employee):
    from django.core.management import call_command

    services.upload(actor=employee, name="a.txt", data=b"Parking is on level 3.")

    call_command("index_documents", "--once")

    assert Document.objects.get().status == "ready"


def test_a_new_embedding_model_reindexes_in_the_background_and_stays_ready(employee):
    document = services.upload(actor=employee, name="a.txt", data=b"Parking is on level 3.")
    indexing.run_pending()
    # As if indexed by an earlier model: its passages are replaced only when the new are done.
    Document.objects.filter(pk=document.pk).update(embedding_model="an-older-model")
    Chunk.objects.filter(document=document).update(embedding_model="an-older-model")

    claimed = indexing.claim("worker")
    assert claimed.pk == document.pk
    assert Document.objects.get(pk=document.pk).status == "ready"
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"an-older-model"}
    indexing.index(claimed)

    document.refresh_from_db()
    assert (document.status, document.embedding_model) == ("ready", current().identity)
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {current().identity}
    assert indexing.claim("worker") is None
