"""'Your data': a user downloads everything they stored as one zip from the account page; an
admin produces it for a user on their request; both recorded, neither with any secret."""

import io
import json
import zipfile

import pytest

from accounts.models import TOTPDevice
from audit.models import AuditEvent
from chat import services
from core import datakeys

pytestmark = pytest.mark.django_db

IP = "10.6.6.8"
USERS = "/admin/auth/user/"


def a_conversation(user, content):
    turn = services.start_turn(actor=user, conversation_id=None, content=content, model_name="m")
    services.finish_answer(
        message_id=turn.answer.pk, content="Noted: " + content, finish_reason="stop"
    )
    return turn.conversation


def opened(response) -> dict[str, str]:
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="your-data-')
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def test_the_account_page_offers_the_download_and_it_holds_everything_of_the_user_only(
    employee_client, employee, other_employee
):
    first = a_conversation(employee, "Grüße aus Köln ☕")
    a_conversation(employee, "The merger with Globex")
    a_conversation(other_employee, "Budget for 2027")
    page = employee_client.get("/accounts/", REMOTE_ADDR=IP, secure=True).content.decode()
    assert 'action="/accounts/your-data/"' in page

    files = opened(employee_client.post("/accounts/your-data/", REMOTE_ADDR=IP, secure=True))

    conversations = [name for name in files if name.startswith("conversations/")]
    assert len(conversations) == 4  # two conversations, as JSON and as Markdown
    exported = json.loads(files[f"conversations/{first.created_at:%Y-%m-%d}-{first.pk}.json"])
    assert [m["content"] for m in exported["messages"]] == [
        "Grüße aus Köln ☕",
        "Noted: Grüße aus Köln ☕",
    ]
    everything = "\n".join(files.values())
    assert "Globex" in everything and "Budget for 2027" not in everything
    account = json.loads(files["account/account.json"])
    assert account["username"] == "alice"
    assert account["authenticator_apps"][0]["confirmed"] is True
    device = TOTPDevice.objects.get(user=employee)
    assert device.key not in everything
    assert "conversations/: every conversation" in files["README.txt"]
    event = AuditEvent.objects.get(action="user.data_exported")
    assert (event.actor_username, event.details["by_admin"]) == ("alice", False)
    assert event.details["conversations_count"] == 2


def test_the_download_is_a_post_so_a_link_elsewhere_cannot_start_it(employee_client):
    response = employee_client.get("/accounts/your-data/", REMOTE_ADDR=IP, secure=True)

    assert response.status_code == 405
    assert not AuditEvent.objects.filter(action="user.data_exported").exists()


def test_erased_conversations_read_as_erased_in_the_archive(employee_client, employee):
    conversation = a_conversation(employee, "Soon gone")
    datakeys.destroy(datakeys.conversation_key(employee.pk, conversation.pk))

    files = opened(employee_client.post("/accounts/your-data/", REMOTE_ADDR=IP, secure=True))

    (markdown,) = [text for name, text in files.items() if name.endswith(".md")]
    assert "(erased)" in markdown and "Soon gone" not in markdown


def test_an_admin_produces_a_users_archive_only_with_the_request_it_answers(
    admin_client_secure, employee
):
    a_conversation(employee, "Quarterly numbers")
    base = {"action": "download_user_data", "_selected_action": [employee.pk]}

    asked = admin_client_secure.post(USERS, base, REMOTE_ADDR=IP, secure=True)
    assert "for them and on their request only" in asked.content.decode()
    refused = admin_client_secure.post(
        USERS, {**base, "confirm": "yes", "reason": ""}, REMOTE_ADDR=IP, secure=True
    )
    assert refused["Content-Type"].startswith("text/html")
    assert not AuditEvent.objects.filter(action="user.data_exported").exists()

    files = opened(
        admin_client_secure.post(
            USERS,
            {**base, "confirm": "yes", "reason": "ticket 4411, asked on 2026-11-28"},
            REMOTE_ADDR=IP,
            secure=True,
        )
    )

    assert "Quarterly numbers" in "\n".join(files.values())
    event = AuditEvent.objects.get(action="user.data_exported")
    assert event.actor_username == "root-admin"
    assert event.target == f"auth.user:{employee.pk}"
    assert event.details["by_admin"] is True
    assert event.details["reason"] == "ticket 4411, asked on 2026-11-28"


def test_an_admin_selecting_two_users_is_asked_for_one(
    admin_client_secure, employee, other_employee
):
    response = admin_client_secure.post(
        USERS,
        {"action": "download_user_data", "_selected_action": [employee.pk, other_employee.pk]},
        REMOTE_ADDR=IP,
        secure=True,
        follow=True,
    )

    assert "Select exactly one user" in response.content.decode()
    assert not AuditEvent.objects.filter(action="user.data_exported").exists()
