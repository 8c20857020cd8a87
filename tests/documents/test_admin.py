"""Collections in the admin: admins create and grant, audited; documents are not there."""

import pytest
from django.contrib.auth.models import Group

from accounts.erasure import place_legal_hold
from accounts.roles import COMPLIANCE
from audit.models import AuditEvent
from documents import services
from documents.models import Collection, CollectionGrant
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

IP = "10.0.0.9"


def _post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def _get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def _inline(total=1, **fields):
    data = {
        "grants-TOTAL_FORMS": str(total),
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    data.update({f"grants-0-{k}": v for k, v in fields.items()})
    return data


def test_a_group_admin_creates_a_collection_and_grants_a_group(client, group_admin):
    legal, sales = Group.objects.create(name="Legal"), Group.objects.create(name="Sales")
    login_2fa(client, group_admin)

    answer = _post(
        client,
        "/admin/documents/collection/add/",
        {"name": "Contracts", "owner_group": legal.pk, **_inline(group=sales.pk, can_read="on")},
    )

    assert answer.status_code == 302, answer.content.decode()[:2000]
    collection = Collection.objects.get(name="Contracts")
    grant = CollectionGrant.objects.get(collection=collection)
    assert (grant.group, grant.can_read, grant.can_add) == (sales, True, False)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "collection.created" in actions and "collection.granted" in actions


def test_admins_cannot_reach_anyones_documents(client, group_admin, employee):
    diary = services.upload(actor=employee, name="diary.txt", data=b"Private thoughts.")
    login_2fa(client, group_admin)

    assert _get(client, "/admin/documents/document/").status_code == 404
    assert b"diary" not in _get(client, "/admin/").content
    listed = _get(client, "/documents/api/documents")
    assert listed.status_code == 403 or listed.json() == {"documents": []}
    assert _get(client, f"/documents/api/documents/{diary.pk}").status_code in (403, 404)


def test_an_employee_cannot_manage_collections(client, employee):
    login_2fa(client, employee)

    assert _get(client, "/admin/documents/collection/").status_code == 403


def test_a_collection_holding_a_held_uploaders_document_is_not_deleted_in_the_admin(
    client, group_admin, employee, other_employee
):
    legal = Group.objects.create(name="Legal")
    held = services.create_collection(actor=group_admin, name="Held", owner_group=legal)
    free = services.create_collection(actor=group_admin, name="Free", owner_group=legal)
    services.upload(actor=employee, name="c.txt", data=b"Clause.", collection=held)
    services.upload(actor=other_employee, name="d.txt", data=b"Draft.", collection=free)
    other_employee.groups.add(Group.objects.get_or_create(name=COMPLIANCE)[0])
    place_legal_hold(actor=other_employee, user=employee, case_reference="CASE-9")
    login_2fa(client, group_admin)

    answer = _post(client, f"/admin/documents/collection/{held.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert answer["Location"].endswith(f"/admin/documents/collection/{held.pk}/change/")
    page = client.get(answer["Location"], REMOTE_ADDR=IP, secure=True).content.decode()
    assert "legal hold" in page

    _post(
        client,
        "/admin/documents/collection/",
        {"action": "delete_selected", "_selected_action": [held.pk, free.pk], "post": "yes"},
    )
    assert list(Collection.objects.values_list("name", flat=True)) == ["Held"]
    assert held.documents.count() == 1
    assert AuditEvent.objects.filter(action="document.deleted").count() == 1
    assert AuditEvent.objects.filter(action="collection.deleted").count() == 1
