"""Compliance staff read, filter, export and verify the audit log in the admin; nobody edits it."""

import csv
import io
import json

import pytest
from django.test import Client

from audit.log import record
from audit.models import AuditEvent
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

LIST = "/admin/audit/auditevent/"


@pytest.fixture
def some_events(employee):
    record("login.failure", outcome="failure", username_tried="mallory")
    record("login.success", actor=employee, target=employee)
    record("conversation.created", actor=employee, target="conversation:1")


def get(client, path, **extra):
    return client.get(path, REMOTE_ADDR="10.0.0.20", secure=True, **extra)


def viewed_events():
    return list(AuditEvent.objects.filter(action="audit.viewed").order_by("sequence"))


def test_compliance_sees_the_list_and_the_view_is_audited_once(compliance_client, some_events):
    response = get(compliance_client, LIST)

    assert response.status_code == 200
    assert b"login.failure" in response.content
    assert b"conversation.created" in response.content
    (viewed,) = viewed_events()
    assert viewed.actor_username == "carol"
    assert viewed.details == {"page": "list", "query": ""}


def test_the_list_filters_by_action_and_outcome(compliance_client, some_events):
    response = get(compliance_client, LIST + "?action=login.failure&outcome__exact=failure")

    assert response.status_code == 200
    rows = response.context["cl"].result_list
    assert [e.action for e in rows] == ["login.failure"]
    assert viewed_events()[-1].details["query"] == "action=login.failure&outcome__exact=failure"


def test_the_list_filters_by_actor(compliance_client, some_events):
    response = get(compliance_client, LIST + "?actor=alice")

    assert {e.actor_username for e in response.context["cl"].result_list} == {"alice"}


def test_search_finds_events_by_target(compliance_client, some_events):
    response = get(compliance_client, LIST + "?q=conversation:1")

    assert [e.target for e in response.context["cl"].result_list] == ["conversation:1"]


def test_search_finds_events_by_ip(compliance_client, some_events):
    client = Client()
    client.get("/", REMOTE_ADDR="203.0.113.77", secure=True)

    response = get(compliance_client, LIST + "?q=203.0.113.77")

    assert [e.action for e in response.context["cl"].result_list] == ["network.refused"]


def test_the_detail_page_is_readable_and_audited(compliance_client, some_events):
    event = AuditEvent.objects.get(action="login.failure")

    response = get(compliance_client, f"{LIST}{event.pk}/change/")

    assert response.status_code == 200
    assert b"mallory" in response.content
    assert b"username_tried" in response.content
    assert event.hash.encode() in response.content
    assert b'name="_save"' not in response.content
    (viewed,) = viewed_events()
    assert viewed.details == {"page": "detail"}
    assert viewed.target == f"audit.auditevent:{event.pk}"


def _download(client, export_format, query=""):
    response = get(client, f"{LIST}export/{export_format}/{query}")
    assert response.status_code == 200
    return response, b"".join(response.streaming_content).decode()


def test_csv_export_contains_the_filtered_set_and_is_audited(compliance_client, some_events):
    response, body = _download(compliance_client, "csv", "?actor=alice")

    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["action"] for row in rows] == ["login.success", "conversation.created"]
    assert rows[1]["target"] == "conversation:1"
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.details == {"format": "csv", "query": "actor=alice", "rows": 2, "via": "admin"}
    assert exported.actor_username == "carol"


def test_csv_export_neutralises_spreadsheet_formulas(compliance_client):
    record("conversation.renamed", target="=cmd|' /C calc'!A0")

    _, body = _download(compliance_client, "csv", "?action=conversation.renamed")

    (row,) = csv.DictReader(io.StringIO(body))
    assert row["target"] == "'=cmd|' /C calc'!A0"


def test_jsonl_export_has_one_event_per_line(compliance_client, some_events):
    _, body = _download(compliance_client, "jsonl", "?actor=alice")

    lines = body.splitlines()
    assert [json.loads(line)["action"] for line in lines] == [
        "login.success",
        "conversation.created",
    ]


def test_the_verify_page_shows_the_verdict_and_is_audited(compliance_client, some_events):
    page = get(compliance_client, LIST + "verify/")
    assert page.status_code == 200
    assert b"Verify now" in page.content
    total = AuditEvent.objects.count()

    response = compliance_client.post(LIST + "verify/", REMOTE_ADDR="10.0.0.20", secure=True)

    assert response.status_code == 200
    assert b"Intact." in response.content
    verified = AuditEvent.objects.get(action="audit.verified")
    assert verified.details["via"] == "admin"
    assert verified.details["checked"] == total


def test_the_verify_page_reports_tampering(compliance_client, some_events):
    from tests.audit.test_chain_integrity import raw_sql

    tampered = AuditEvent.objects.get(action="login.failure")
    raw_sql(
        "UPDATE audit_auditevent SET outcome = 'success' WHERE sequence = %s",
        [tampered.sequence],
    )

    response = compliance_client.post(LIST + "verify/", REMOTE_ADDR="10.0.0.20", secure=True)

    assert b"Tampering detected." in response.content
    assert f"event #{tampered.sequence} ".encode() in response.content


def test_compliance_cannot_change_or_delete_an_event(compliance_client, some_events):
    event = AuditEvent.objects.get(action="login.failure")

    change = compliance_client.post(
        f"{LIST}{event.pk}/change/", {"outcome": "success"}, REMOTE_ADDR="10.0.0.20", secure=True
    )
    delete = compliance_client.post(
        f"{LIST}{event.pk}/delete/", {"post": "yes"}, REMOTE_ADDR="10.0.0.20", secure=True
    )

    assert change.status_code == 403
    assert delete.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).outcome == "failure"


def test_even_a_superuser_cannot_add_change_or_delete_events(admin_client_secure, some_events):
    event = AuditEvent.objects.get(action="login.failure")

    assert get(admin_client_secure, f"{LIST}add/").status_code == 403
    assert get(admin_client_secure, f"{LIST}{event.pk}/delete/").status_code == 403
    page = get(admin_client_secure, f"{LIST}{event.pk}/change/")
    assert b'name="_save"' not in page.content


@pytest.mark.parametrize(
    "path",
    ["/admin/auth/user/", "/admin/auth/group/", "/admin/auth/user/add/", "/admin/admin/logentry/"],
)
def test_compliance_cannot_open_other_admin_pages(compliance_client, path):
    assert get(compliance_client, path).status_code in (403, 404)


def test_the_admin_index_shows_compliance_only_the_audit_log_and_legal_holds(compliance_client):
    response = get(compliance_client, "/admin/")

    assert response.status_code == 200
    models = {
        (app["app_label"], model["object_name"])
        for app in response.context["app_list"]
        for model in app["models"]
    }
    assert models == {("audit", "AuditEvent"), ("accounts", "LegalHold")}


def test_an_employee_cannot_open_the_admin(employee):
    client = Client()
    login_2fa(client, employee)

    response = get(client, LIST)

    assert response.status_code == 403
    assert b"You may not open the administration" in response.content
    assert not viewed_events()
