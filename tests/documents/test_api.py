"""The documents API: upload, list, status, delete; limits; another user's view."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from documents import services
from documents.indexing import run_pending
from documents.models import Chunk, Document, DocumentFile
from tests.documents import files
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

URL = "/documents/api/documents"


@pytest.fixture
def alice_client(employee):
    return _signed_in(employee)


class HttpsClient(Client):
    """Every request over HTTPS, as browsers reach the site."""

    def generic(self, *args, **kwargs):
        kwargs["secure"] = True
        return super().generic(*args, **kwargs)


def _signed_in(user):
    client = HttpsClient(REMOTE_ADDR="10.0.0.5")
    login_2fa(client, user)
    return client


def _upload(client, name, data, **extra):
    return client.post(URL, {"file": SimpleUploadedFile(name, data), **extra})


def test_an_upload_is_queued_then_indexed_with_its_pages(alice_client, employee):
    answer = _upload(alice_client, "handbook.pdf", files.pdf(["Intro.", "Lunch is at noon."]))

    assert answer.status_code == 201
    body = answer.json()
    assert body["name"] == "handbook.pdf" and body["status"] == "queued"
    assert run_pending() == 1
    status = alice_client.get(f"{URL}/{body['id']}").json()
    assert status["status"] == "ready" and status["pages"] == 2
    assert status["status_label"] == "ready"
    pages = {c.page for c in Chunk.objects.filter(document_id=body["id"])}
    assert pages == {1, 2}
    assert alice_client.get(URL).json()["documents"][0]["id"] == body["id"]
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "document.uploaded" in actions and "document.indexed" in actions


def test_the_type_is_read_from_the_content_and_the_name_is_only_a_label(alice_client):
    answer = _upload(alice_client, "../../etc/<img src=x onerror=go()>.pdf", b"Plain words.")

    body = answer.json()
    assert body["kind"] == "text"
    assert body["name"] == "<img src=x onerror=go()>.pdf"


def test_an_unreadable_type_is_refused_with_a_sentence(alice_client):
    answer = _upload(alice_client, "tool.txt", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 100)

    assert answer.status_code == 400
    assert "cannot be read" in answer.json()["error"]["detail"]
    assert not Document.objects.exists()


def test_size_and_count_limits_are_explained(alice_client, settings):
    settings.DOCUMENTS_MAX_FILE_BYTES = 2048
    answer = _upload(alice_client, "big.txt", b"a" * 4096)
    assert answer.status_code == 413
    assert "at most" in answer.json()["error"]["detail"]

    settings.DOCUMENTS_MAX_PER_USER = 1
    assert _upload(alice_client, "one.txt", b"first").status_code == 201
    second = _upload(alice_client, "two.txt", b"second")
    assert second.status_code == 400
    assert "delete some" in second.json()["error"]["detail"]


def test_a_hostile_file_ends_failed_with_the_reason_shown(alice_client):
    body = _upload(alice_client, "a.pdf", b"%PDF-1.7\n" + b"\x00junk" * 200).json()

    run_pending()

    status = alice_client.get(f"{URL}/{body['id']}").json()
    assert status["status"] == "failed"
    assert status["status_label"].startswith("failed: The PDF")
    assert AuditEvent.objects.filter(action="document.failed").exists()


def test_another_employee_cannot_list_fetch_or_delete_it(alice_client, other_employee):
    body = _upload(alice_client, "private.txt", b"My own notes.").json()
    bob = _signed_in(other_employee)

    assert bob.get(URL).json() == {"documents": []}
    assert bob.get(f"{URL}/{body['id']}").status_code == 404
    assert bob.delete(f"{URL}/{body['id']}").status_code == 404
    assert Document.objects.filter(pk=body["id"]).exists()


def test_delete_removes_the_document_and_everything_from_it(alice_client):
    body = _upload(alice_client, "notes.md", b"# Notes\n\n- one\n- two\n").json()
    run_pending()
    assert Chunk.objects.exists()

    answer = alice_client.delete(f"{URL}/{body['id']}")

    assert answer.status_code == 200
    assert not Document.objects.exists() and not Chunk.objects.exists()
    assert alice_client.get(f"{URL}/{body['id']}").status_code == 404
    assert AuditEvent.objects.filter(action="document.deleted").exists()


def test_deleting_an_account_deletes_its_documents_and_everything_from_them(employee):
    services.upload(actor=employee, name="a.md", data=b"# Notes\n\n- one\n- two\n")
    run_pending()
    assert Chunk.objects.exists()

    employee.delete()

    assert not Document.objects.exists() and not Chunk.objects.exists()
    assert not DocumentFile.objects.exists()


def test_deleting_a_collection_deletes_its_documents(employee, admin_user):
    from django.contrib.auth.models import Group

    legal = Group.objects.create(name="Legal")
    collection = services.create_collection(actor=admin_user, name="Contracts", owner_group=legal)
    services.upload(actor=employee, name="c.txt", data=b"Clause one.", collection=collection)
    run_pending()

    services.delete_collection(actor=admin_user, collection=collection)

    assert not Document.objects.exists() and not Chunk.objects.exists()
    assert AuditEvent.objects.filter(action="collection.deleted").exists()


def test_a_member_of_a_group_with_add_rights_uploads_to_its_collection(
    alice_client, employee, other_employee, admin_user
):
    from django.contrib.auth.models import Group

    legal = Group.objects.create(name="Legal")
    collection = services.create_collection(actor=admin_user, name="Contracts", owner_group=legal)
    refused = _upload(alice_client, "c.txt", b"Clause one.", collection=str(collection.pk))
    assert refused.status_code == 404

    employee.groups.add(legal)
    added = _upload(alice_client, "c.txt", b"Clause one.", collection=str(collection.pk))
    assert added.status_code == 201 and added.json()["collection"] == str(collection.pk)
    bob = _signed_in(other_employee)
    assert bob.get(f"{URL}/{added.json()['id']}").status_code == 404


def test_erasing_a_user_deletes_each_document_with_its_own_event(employee, admin_user):
    services.upload(actor=employee, name="a.txt", data=b"One.")
    services.upload(actor=employee, name="b.txt", data=b"Two.")

    assert services.delete_all_of(actor=admin_user, user=employee) == 2

    assert not Document.objects.exists() and not DocumentFile.objects.exists()
    assert AuditEvent.objects.filter(action="document.deleted").count() == 2
