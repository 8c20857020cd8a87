"""Changing the embedding model: documents are indexed again in the background, beside their
old index, and questions are answered from the old index (embedded by the old model) until
the new one is complete; then the old passages and their cached vectors are gone.

Model A is the packaged all-MiniLM-L6-v2; model B is a copy with altered weights, made
offline by the test (tests/support/embedding_models.py; nothing is downloaded)."""

import datetime
import logging
import shutil

import pytest

from audit.models import AuditEvent
from chat.retrieval import Sources, SourcesUnsearchable
from core import datakeys
from documents import embedding, indexing, services, vectors
from documents.models import Chunk, Document, document_key
from documents.search import DocumentSearch
from tests.documents import files
from tests.documents.test_erasure import dump
from tests.support.embedding_models import make_retuned_model

pytestmark = pytest.mark.django_db

FACT = "The emergency assembly point is the blue oak tree behind building C."
PAGES = [
    "Welcome to the site handbook. It describes the campus for new employees.",
    "The cafeteria opens at eight and serves lunch until two in the afternoon.",
    FACT,
    "Visitors sign in at the reception desk and wear a badge at all times.",
]
QUESTION = "Where is the emergency assembly point?"


@pytest.fixture(scope="module")
def model_b(tmp_path_factory):
    return make_retuned_model(tmp_path_factory.mktemp("models") / "minilm-retuned")


@pytest.fixture
def handbook(employee):
    document = services.upload(actor=employee, name="site handbook.pdf", data=files.pdf(PAGES))
    assert indexing.run_pending() == 1
    document.refresh_from_db()
    assert document.embedding_model == embedding.current().identity
    return document


def _ask(user, document):
    return DocumentSearch().retrieve(
        user, QUESTION, Sources(documents=(str(document.pk),)), max_chars=3000
    )


def _best_score(model, document, identity) -> float:
    """The fact's passage as ``model`` scores it against the question, from the vectors
    stored under ``identity``."""
    stored = [
        vectors.decode(chunk.vector, model.dimensions)
        for chunk in Chunk.objects.filter(document=document, embedding_model=identity)
        if FACT in chunk.passage
    ]
    assert stored, f"no passage of {identity} holds the fact"
    query = embedding.embed_texts([QUESTION], model)[0]
    return round(float(stored[0] @ query), 3)


class Killed(BaseException):
    """A worker process killed between two statements."""


def _identities(document) -> set[str]:
    return set(Chunk.objects.filter(document=document).values_list("embedding_model", flat=True))


def test_a_copy_with_changed_weights_is_another_model_and_an_unchanged_copy_is_not(
    model_b, tmp_path
):
    packaged = embedding.describe(embedding.packaged_dir(), setting="EMBEDDING_MODEL_DIR")
    copy = tmp_path / "minilm-copy"
    shutil.copytree(embedding.packaged_dir(), copy)
    unchanged = embedding.describe(copy, setting="EMBEDDING_MODEL_DIR")
    changed = embedding.describe(model_b, setting="EMBEDDING_MODEL_DIR")

    assert unchanged.identity == packaged.identity
    assert unchanged.name == embedding.PACKAGED_MODEL_NAME
    assert changed.name == "minilm-retuned"
    assert changed.fingerprint != packaged.fingerprint
    assert not changed.made(packaged.identity) and not packaged.made(changed.identity)
    # An index recorded before identities carried a fingerprint: the packaged model's.
    assert packaged.made(embedding.PACKAGED_MODEL_NAME)
    assert not changed.made(embedding.PACKAGED_MODEL_NAME)


def test_questions_are_answered_from_the_old_index_until_the_new_one_is_complete(
    employee, handbook, model_b, settings, monkeypatch
):
    model_a = embedding.current()
    identity_a = model_a.identity
    first = _ask(employee, handbook)
    assert FACT in first[0]["quote"]
    assert vectors.cache.get(handbook.pk, (handbook.indexed_at, identity_a)) is not None

    settings.EMBEDDING_MODEL_DIR = model_b
    model_b_ = embedding.current()
    identity_b = model_b_.identity
    monkeypatch.setattr(indexing, "WRITE_EVERY", 1)  # one passage per transaction
    claimed = indexing.claim("worker")
    assert claimed.pk == handbook.pk

    seen_midway = []

    def midway():
        """Asked by the worker after each batch: meanwhile, a question is answered from A."""
        document = Document.objects.get(pk=handbook.pk)
        assert (document.status, document.embedding_model) == ("ready", identity_a)
        assert _identities(document) == {identity_a, identity_b}
        citations = _ask(employee, document)
        assert FACT in citations[0]["quote"]
        # Scored with A's stored vectors and the question embedded by A, not B.
        assert citations[0]["score"] == _best_score(model_a, document, identity_a)
        seen_midway.append(Chunk.objects.filter(embedding_model=identity_b).count())
        assert services.as_dict(document)["status_label"].startswith("ready (indexing again ")
        return False

    indexing.index(claimed, stop_requested=midway)

    assert seen_midway == [1, 2, 3]
    document = Document.objects.get(pk=handbook.pk)
    assert (document.status, document.embedding_model) == ("ready", identity_b)
    assert services.as_dict(document)["status_label"] == "ready"
    assert _identities(document) == {identity_b}
    assert Chunk.objects.filter(document=document).count() == len(PAGES)
    # A's decrypted vectors are gone from the cache with A's passages.
    assert vectors.cache.get(handbook.pk, (handbook.indexed_at, identity_a)) is None
    after = _ask(employee, document)
    assert FACT in after[0]["quote"]
    assert after[0]["score"] == _best_score(model_b_, document, identity_b)
    assert after[0]["score"] != first[0]["score"]
    event = AuditEvent.objects.filter(action="document.indexed").order_by("-sequence").first()
    assert event.details["embedding_model"] == identity_b
    assert event.details["previous_embedding_model"] == identity_a
    assert indexing.claim("worker") is None


def test_a_reindexing_stopped_half_way_is_taken_up_again_and_finished(
    employee, handbook, model_b, settings, monkeypatch
):
    identity_a = embedding.current().identity
    settings.EMBEDDING_MODEL_DIR = model_b
    identity_b = embedding.current().identity
    monkeypatch.setattr(indexing, "WRITE_EVERY", 1)

    # The worker is stopped (SIGTERM to index_documents) after its second passage.
    calls = []
    claimed = indexing.claim("stopping-worker")
    indexing.index(claimed, stop_requested=lambda: calls.append(1) or len(calls) == 2)

    document = Document.objects.get(pk=handbook.pk)
    assert (document.status, document.embedding_model) == ("ready", identity_a)
    assert Chunk.objects.filter(document=document, embedding_model=identity_b).count() == 2
    assert FACT in _ask(employee, document)[0]["quote"]

    # The next worker (the restarted process) takes it at once, not after the lease.
    assert indexing.run_pending("restarted-worker") == 1

    document.refresh_from_db()
    assert (document.status, document.embedding_model) == ("ready", identity_b)
    assert _identities(document) == {identity_b}
    positions = Chunk.objects.filter(document=document).values_list("position", flat=True)
    assert sorted(positions) == list(range(len(PAGES)))


def test_a_reindexing_whose_worker_died_is_taken_over_after_its_lease(
    employee, handbook, model_b, settings, monkeypatch
):
    settings.EMBEDDING_MODEL_DIR = model_b
    identity_b = embedding.current().identity
    monkeypatch.setattr(indexing, "WRITE_EVERY", 1)
    claimed = indexing.claim("doomed-worker")

    def killed():
        raise Killed  # the process ends here: nothing more runs, its lease is left to run out

    with pytest.raises(Killed):
        indexing.index(claimed, stop_requested=killed)
    assert indexing.claim("too-early") is None
    Document.objects.filter(pk=claimed.pk).update(
        lease_until=claimed.lease_until - datetime.timedelta(days=1)
    )

    assert indexing.run_pending("next-worker") == 1

    document = Document.objects.get(pk=handbook.pk)
    assert _identities(document) == {identity_b}
    assert Chunk.objects.filter(document=document).count() == len(PAGES)


def test_without_the_previous_model_the_question_is_refused_with_a_reason_and_logged(
    employee, handbook, model_b, settings, tmp_path, caplog
):
    settings.EMBEDDING_MODEL_DIR = model_b
    settings.EMBEDDING_PREVIOUS_MODEL_DIR = tmp_path / "removed-model"

    with (
        caplog.at_level(logging.ERROR, logger="documents.search"),
        pytest.raises(SourcesUnsearchable) as refused,
    ):
        _ask(employee, handbook)

    assert "\u201csite handbook.pdf\u201d cannot be searched right now" in str(refused.value)
    assert "embedding model" in str(refused.value)
    assert "EMBEDDING_PREVIOUS_MODEL_DIR" in caplog.text
    assert handbook.embedding_model in caplog.text

    # Once indexed again with the current model, it answers again.
    assert indexing.run_pending() == 1
    assert FACT in _ask(employee, handbook)[0]["quote"]


def test_the_previous_model_may_live_in_a_directory_of_its_own(
    employee, handbook, model_b, settings, tmp_path
):
    """A site moving from B back to A (or to a third model) names B as the previous one."""
    settings.EMBEDDING_MODEL_DIR = model_b
    assert indexing.run_pending() == 1
    settings.EMBEDDING_MODEL_DIR = None
    settings.EMBEDDING_PREVIOUS_MODEL_DIR = model_b
    model_b_ = embedding.previous()

    citations = _ask(employee, handbook)

    document = Document.objects.get(pk=handbook.pk)
    assert document.embedding_model == model_b_.identity
    assert citations[0]["score"] == _best_score(model_b_, document, model_b_.identity)


def test_deleting_a_document_half_way_through_its_reindexing_leaves_nothing(
    employee, handbook, model_b, settings, monkeypatch
):
    settings.EMBEDDING_MODEL_DIR = model_b
    monkeypatch.setattr(indexing, "WRITE_EVERY", 1)
    claimed = indexing.claim("worker")
    written = []

    def delete_midway():
        if not written:
            written.extend(v for values in dump().values() for v in values)
            services.delete(actor=employee, document=Document.objects.get(pk=handbook.pk))
        return False

    indexing.index(claimed, stop_requested=delete_midway)

    assert not Document.objects.filter(pk=handbook.pk).exists()
    assert not Chunk.objects.exists()
    assert not datakeys.exists(document_key(employee.pk, handbook.pk))
    # Both indexes were in the database when it was deleted; none of it is left.
    assert len(written) == 2 + 2 * (len(PAGES) + 1)
    left = [v for values in dump().values() for v in values]
    assert not set(written) & set(left)
    assert not any(FACT in str(v) for v in left)


def test_a_reindexing_that_fails_keeps_the_old_index_and_is_not_retried_at_once(
    employee, handbook, model_b, settings
):
    identity_a = handbook.embedding_model
    # As in a database restored from a backup older than the document's deletion.
    datakeys.destroy(document_key(employee.pk, handbook.pk))
    settings.EMBEDDING_MODEL_DIR = model_b

    assert indexing.run_pending() == 1

    document = Document.objects.get(pk=handbook.pk)
    assert (document.status, document.embedding_model) == ("ready", identity_a)
    assert services.as_dict(document)["status_label"] == "ready"
    assert _identities(document) == {identity_a}
    assert indexing.claim("worker") is None
