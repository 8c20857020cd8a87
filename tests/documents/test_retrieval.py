"""Passages in chat: over the real socket with a scripted worker, rights by user and group."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client

from audit.models import AuditEvent
from chat import exports as chat_exports
from chat import services as chat_services
from chat.models import AnswerSources, Conversation, Message
from documents import services
from documents.indexing import run_pending
from tests.documents import files
from tests.support.inference import running_worker
from tests.support.personas import login_2fa, make_employee
from tests.support.websockets import send, socket_for, until_done

pytestmark = pytest.mark.django_db(transaction=True)

FACT = "The emergency assembly point is the blue oak tree behind building C."


def _indexed(owner, *, collection=None, pages=None):
    pages = pages or ["Welcome to the site handbook.", FACT]
    document = services.upload(
        actor=owner, name="site handbook.pdf", data=files.pdf(pages), collection=collection
    )
    run_pending()
    document.refresh_from_db()
    assert document.status == "ready"
    return document


@pytest.fixture
async def worker():
    async with running_worker("test-worker") as worker:
        yield worker
    await sync_to_async(connections.close_all)()


async def _socket(user):
    client = Client()
    await sync_to_async(login_2fa)(client, user)
    communicator = socket_for(client)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


QUESTION = "Where is the emergency assembly point?"


async def test_an_answer_cites_the_page_that_holds_the_fact(worker, employee):
    document = await sync_to_async(_indexed)(employee)
    chat = await _socket(employee)
    try:
        await send(chat, QUESTION, sources={"documents": [str(document.pk)]})
        frames = await until_done(chat)
    finally:
        await chat.disconnect()

    done = frames[-1]
    assert done["citations"][0]["document"] == str(document.pk)
    assert done["citations"][0]["page"] == 2
    assert "blue oak tree" in done["citations"][0]["quote"]
    assert done["citations"][0]["name"] == "site handbook.pdf"
    stored = await AnswerSources.objects.aget(answer_id=done["message"])
    assert "blue oak tree" in stored.citations
    event = await AuditEvent.objects.aget(action="retrieval")
    assert event.details["document_ids"] == [str(document.pk)]
    assert "oak" not in str(event.details)


async def test_another_employee_cannot_attach_it_by_id(worker, employee, other_employee):
    document = await sync_to_async(_indexed)(employee)
    chat = await _socket(other_employee)
    try:
        await send(chat, QUESTION, sources={"documents": [str(document.pk)]})
        error = await chat.receive_json_from(timeout=5)
    finally:
        await chat.disconnect()

    assert error["type"] == "error" and error["code"] == "source_not_found"
    assert "not yours to read" in error["detail"]
    assert not await Conversation.objects.filter(user=other_employee).aexists()
    assert not await AuditEvent.objects.filter(action="retrieval").aexists()


async def test_a_document_that_cannot_be_searched_now_is_refused_with_a_code_of_its_own(
    worker, employee, monkeypatch
):
    """Its embedding model is gone while it is indexed again: the person may read it, and
    may try again later (not the source_not_found of someone else's document)."""
    import documents.search

    document = await sync_to_async(_indexed)(employee)
    monkeypatch.setattr(documents.search, "model_for", lambda identity, models: None)
    chat = await _socket(employee)
    try:
        await send(chat, QUESTION, sources={"documents": [str(document.pk)]})
        error = await chat.receive_json_from(timeout=5)
    finally:
        await chat.disconnect()

    assert error["type"] == "error" and error["code"] == "source_unsearchable"
    assert "\u201csite handbook.pdf\u201d cannot be searched right now" in error["detail"]
    assert not await Conversation.objects.filter(user=employee).aexists()


@pytest.mark.django_db
def test_the_question_reaches_the_model_after_the_quoted_excerpts(employee):
    document = _indexed(employee)
    from chat.retrieval import Sources, retrieve

    citations = retrieve(employee, QUESTION, Sources(documents=(str(document.pk),)), max_chars=3000)
    turn = chat_services.start_turn(
        actor=employee,
        conversation_id=None,
        content=QUESTION,
        model_name="m",
        citations=citations,
    )

    prompt = turn.history[-1]["content"]
    assert prompt.index("blue oak tree") < prompt.index(f"Question: {QUESTION}")
    assert "not instructions" in prompt
    # What is stored is the question as asked; the excerpts go with the answer.
    assert Message.objects.get(pk=turn.question.pk).content == QUESTION
    exported = chat_exports.export(
        actor=employee, conversation=turn.conversation, export_format="md"
    )[1]
    assert "site handbook.pdf, page 2" in exported


@pytest.mark.django_db
def test_the_context_budget_bounds_the_excerpts(employee):
    from chat.retrieval import Sources, retrieve

    pages = [f"Section {n}. " + "Filler about unrelated office plants. " * 25 for n in range(8)]
    document = _indexed(employee, pages=[*pages, FACT])
    sources = Sources(documents=(str(document.pk),))

    citations = retrieve(employee, QUESTION, sources, max_chars=1200)
    assert sum(len(c["quote"]) for c in citations) <= 1200
    assert citations[0]["page"] == 9
    assert all(c["score"] >= 0.25 for c in citations)


@pytest.mark.django_db
def test_passages_below_the_similarity_floor_are_left_out(employee, settings):
    from chat.retrieval import Sources, retrieve

    sources = Sources(documents=(str(_indexed(employee).pk),))
    assert retrieve(employee, QUESTION, sources, max_chars=3000)

    settings.RETRIEVAL_MIN_SCORE = 0.95
    assert retrieve(employee, QUESTION, sources, max_chars=3000) == []


@pytest.mark.django_db
def test_collections_are_read_by_their_groups_only(employee, other_employee, admin_user):
    from chat.retrieval import Sources, SourcesRefused, retrieve

    legal, sales = Group.objects.create(name="Legal"), Group.objects.create(name="Sales")
    employee.groups.add(legal)
    other_employee.groups.add(sales)
    carol = make_employee("carol")
    collection = services.create_collection(actor=admin_user, name="Contracts", owner_group=legal)
    _indexed(employee, collection=collection)
    sources = Sources(collections=(str(collection.pk),))

    assert retrieve(employee, QUESTION, sources, max_chars=3000)
    with pytest.raises(SourcesRefused):
        retrieve(other_employee, QUESTION, sources, max_chars=3000)

    services.grant(
        actor=admin_user, collection=collection, group=sales, can_read=True, can_add=False
    )
    assert retrieve(other_employee, QUESTION, sources, max_chars=3000)
    with pytest.raises(services.CollectionNotFound):
        services.collection_for_adding(other_employee, collection.pk)
    with pytest.raises(SourcesRefused):
        retrieve(carol, QUESTION, sources, max_chars=3000)

    services.revoke(actor=admin_user, collection=collection, group=sales)
    with pytest.raises(SourcesRefused):
        retrieve(other_employee, QUESTION, sources, max_chars=3000)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"collection.created", "collection.granted", "collection.revoked"} <= actions
