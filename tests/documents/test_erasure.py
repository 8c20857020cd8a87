"""Documents are sealed under a data key of their own: deleting one (or its collection, or
erasing its uploader) destroys the key, so a copy of the database taken before cannot show
it; a legal hold stops it; the user's data archive lists them."""

import base64
import datetime
import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from accounts.erasure import ErasureRefused, erase_user, place_legal_hold, reapply_erasures
from accounts.roles import COMPLIANCE
from audit.models import AuditEvent
from chat.retrieval import Sources
from core import crypto, datakeys, personal_data
from documents import indexing, services, vectors
from documents.models import Chunk, Document, DocumentFile, document_key
from documents.search import DocumentSearch
from tests.documents.test_api import _signed_in

pytestmark = pytest.mark.django_db

SECRET = b"The merger with Globex closes on 14 March."


def stored(table: str, column: str) -> list[str]:
    """A column as a database dump holds it."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT {column} FROM "{table}"')  # noqa: S608 (names from the test)
        return [row[0] for row in cursor.fetchall()]


def dump() -> dict[str, list[str]]:
    return {
        "name": stored("documents_document", "name"),
        "data": stored("documents_documentfile", "data"),
        "passage": stored("documents_chunk", "passage"),
        "vector": stored("documents_chunk", "vector"),
    }


def an_indexed_document(user, name="merger.txt", data=SECRET, collection=None):
    document = services.upload(actor=user, name=name, data=data, collection=collection)
    assert indexing.run_pending() == 1
    document.refresh_from_db()
    assert document.status == Document.Status.READY
    return document


def test_everything_of_a_document_is_sealed_under_its_own_key_and_deleting_it_destroys_it(
    employee, admin_user
):
    kept = an_indexed_document(employee, "budget.txt", b"Budget for 2027 is flat.")
    document = an_indexed_document(employee)
    ref = document_key(employee.pk, document.pk)
    assert datakeys.exists(ref) and datakeys.exists(document_key(employee.pk, kept.pk))
    before = dump()
    for column, tokens in before.items():
        assert tokens and all(token.startswith("dk1:") for token in tokens), column
    mine = [t for tokens in before.values() for t in tokens if datakeys.ref_of(t) == ref]
    assert len(mine) == 4  # name, file, one passage, one vector

    services.delete(actor=employee, document=document)

    assert not datakeys.exists(ref)
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(document_id=document.pk).exists()
    # The dump taken before, read with today's key store: that document is gone for good,
    # the other reads as before.
    assert {crypto.decrypt(token) for token in mine} == {datakeys.ERASED}
    others = [t for tokens in before.values() for t in tokens if datakeys.ref_of(t) != ref]
    assert "budget.txt" in {crypto.decrypt(token) for token in others}
    assert datakeys.ERASED not in {crypto.decrypt(token) for token in others}
    assert str(Document.objects.get(pk=kept.pk).name) == "budget.txt"


def test_a_document_deleted_any_other_way_takes_its_key_along(employee, admin_user):
    legal = Group.objects.create(name="Legal")
    employee.groups.add(legal)
    collection = services.create_collection(actor=admin_user, name="Contracts", owner_group=legal)
    shared = services.upload(actor=employee, name="c.txt", data=b"Clause.", collection=collection)
    personal = services.upload(actor=employee, name="p.txt", data=b"Private.")
    shared_ref = document_key(employee.pk, shared.pk)
    personal_ref = document_key(employee.pk, personal.pk)
    assert datakeys.exists(shared_ref) and datakeys.exists(personal_ref)

    services.delete_collection(actor=admin_user, collection=collection)
    assert not datakeys.exists(shared_ref) and datakeys.exists(personal_ref)

    employee.delete()  # the rows cascade; post_delete destroys the key
    assert not datakeys.exists(personal_ref)


def test_a_part_never_makes_a_key_of_its_own(employee):
    document = services.upload(actor=employee, name="a.txt", data=b"Alpha.")
    datakeys.destroy(document_key(employee.pk, document.pk))
    chunk = Chunk(document=document, position=0, passage="Alpha.", vector="", embedding_model="m")

    with pytest.raises(crypto.DecryptionError, match="no data key"), transaction.atomic():
        chunk.save()
    assert DocumentFile.objects.get(document=document).data == datakeys.ERASED


def test_erasing_a_user_deletes_their_documents_each_audited(employee, other_employee):
    mine = [an_indexed_document(employee), services.upload(actor=employee, name="b", data=b"B.")]
    theirs = services.upload(actor=other_employee, name="kept.txt", data=b"Kept.")
    before = dump()

    erased = erase_user(actor=None, user=employee, reason="erasure request 2026-120")

    assert erased["documents"] == 2
    assert list(Document.objects.values_list("pk", flat=True)) == [theirs.pk]
    assert AuditEvent.objects.filter(action="document.deleted").count() == 2
    event = AuditEvent.objects.get(action="user.erased")
    assert event.details["documents_count"] == 2
    for document in mine:
        assert not datakeys.exists(document_key(employee.pk, document.pk))
    readable = {crypto.decrypt(t) for tokens in before.values() for t in tokens}
    assert "kept.txt" in readable and "merger.txt" not in readable


def test_a_legal_hold_keeps_the_documents_from_erasure_and_deletion(
    employee, other_employee, admin_user
):
    document = services.upload(actor=employee, name="held.txt", data=b"Evidence.")
    compliance = other_employee
    compliance.groups.add(Group.objects.get_or_create(name=COMPLIANCE)[0])
    place_legal_hold(actor=compliance, user=employee, case_reference="CASE-7")

    with pytest.raises(ErasureRefused, match="legal hold"):
        erase_user(actor=admin_user, user=employee, reason="request")
    with pytest.raises(services.DocumentHeld, match="legal hold"):
        services.delete(actor=employee, document=document)
    response = _signed_in(employee).delete(f"/documents/api/documents/{document.pk}")
    assert response.status_code == 409
    assert "legal hold" in response.json()["error"]["detail"]

    assert Document.objects.filter(pk=document.pk).exists()
    assert datakeys.exists(document_key(employee.pk, document.pk))
    assert str(Document.objects.get(pk=document.pk).name) == "held.txt"


def test_a_collection_with_a_held_uploaders_document_is_not_deleted(
    employee, other_employee, admin_user
):
    legal = Group.objects.create(name="Legal")
    collection = services.create_collection(actor=admin_user, name="Contracts", owner_group=legal)
    services.upload(actor=employee, name="c.txt", data=b"Clause.", collection=collection)
    other_employee.groups.add(Group.objects.get_or_create(name=COMPLIANCE)[0])
    place_legal_hold(actor=other_employee, user=employee, case_reference="CASE-8")

    with pytest.raises(services.DocumentHeld, match="legal hold"):
        services.delete_collection(actor=admin_user, collection=collection)
    assert Document.objects.filter(collection=collection).count() == 1


def test_the_data_archive_lists_the_documents_and_not_their_content(employee, other_employee):
    an_indexed_document(employee)
    gone = services.upload(actor=employee, name="gone.txt", data=b"Gone.")
    services.upload(actor=other_employee, name="not-mine.txt", data=b"Other.")
    datakeys.destroy(document_key(employee.pk, gone.pk))  # as a restored backup would read

    archive = personal_data.build_archive(employee, now=datetime.datetime.now(datetime.UTC))

    assert archive.counts["documents"] == 2
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        listed = json.loads(opened.read("documents/documents.json"))
        everything = b"".join(opened.read(name) for name in opened.namelist())
    by_name = {entry["name"]: entry for entry in listed}
    assert set(by_name) == {"merger.txt", "(erased)"}
    assert by_name["merger.txt"]["size_bytes"] == len(SECRET)
    assert by_name["merger.txt"]["status"] == "ready" and by_name["merger.txt"]["uploaded_at"]
    assert b"Globex" not in everything and b"not-mine" not in everything


def test_a_restored_database_forgets_documents_deleted_since(employee):
    kept = services.upload(actor=employee, name="kept.txt", data=b"Kept.")
    document = services.upload(actor=employee, name="later.txt", data=b"Deleted later.")
    # The database as restored from a backup taken before the deletion: the row is there,
    # the key (in today's key store) is gone.
    datakeys.destroy(document_key(employee.pk, document.pk))

    result = reapply_erasures()

    assert result.scopes == {"document": 1}
    assert list(Document.objects.values_list("pk", flat=True)) == [kept.pk]
    event = AuditEvent.objects.get(action="document.deleted")
    assert event.details["reapplied_after_restore"] is True


@pytest.mark.django_db(transaction=True)
def test_documents_stored_under_the_keyring_move_to_their_data_keys_when_migrated(employee):
    executor = MigrationExecutor(connection)
    executor.migrate([("documents", "0001_documents_chunks_collections")])
    old = executor.loader.project_state([("documents", "0001_documents_chunks_collections")]).apps
    document = old.get_model("documents", "Document").objects.create(
        owner_id=employee.pk, name="merger.txt", kind="text", size=len(SECRET)
    )
    old.get_model("documents", "DocumentFile").objects.create(
        document=document, data=base64.b64encode(SECRET).decode("ascii")
    )
    old.get_model("documents", "Chunk").objects.create(
        document=document, position=0, passage=SECRET.decode(), vector="AAAA", embedding_model="m"
    )
    assert all(tokens[0].startswith("gAAAAA") for tokens in dump().values())

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    ref = document_key(employee.pk, document.pk)
    assert all(datakeys.ref_of(tokens[0]) == ref for tokens in dump().values())
    migrated = Document.objects.get(pk=document.pk)
    assert migrated.name == "merger.txt"
    assert base64.b64decode(DocumentFile.objects.get(document=migrated).data) == SECRET
    chunk = Chunk.objects.get(document=migrated)
    assert (chunk.passage, chunk.vector) == (SECRET.decode(), "AAAA")
    datakeys.destroy(ref)
    assert Chunk.objects.get(document=migrated).passage == datakeys.ERASED


def test_search_passes_over_a_document_erased_after_the_backup_it_was_restored_from(employee):
    erased = an_indexed_document(employee)
    kept = an_indexed_document(employee, "dates.txt", b"The merger closes on 14 March.")
    # As in a restored database before reapply_erasures: the rows are back, the key is not.
    datakeys.destroy(document_key(employee.pk, erased.pk))
    vectors.cache.clear()

    citations = DocumentSearch().retrieve(
        employee,
        "When does the merger close?",
        Sources(documents=(str(erased.pk), str(kept.pk))),
        max_chars=2000,
    )

    assert [c["document"] for c in citations] == [str(kept.pk)]


def test_a_queued_document_erased_after_the_backup_fails_with_a_reason_instead_of_crashing(
    employee,
):
    document = services.upload(actor=employee, name="later.txt", data=b"Deleted later.")
    datakeys.destroy(document_key(employee.pk, document.pk))

    assert indexing.run_pending() == 1

    document.refresh_from_db()
    assert document.status == Document.Status.FAILED
    assert document.failure_reason == indexing.ERASED_FILE
