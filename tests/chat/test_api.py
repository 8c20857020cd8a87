"""The chat page and its JSON API: each user sees and changes only their own conversations."""

import json

import pytest

from audit.models import AuditEvent
from chat import services
from chat.inference import registry
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

IP = "10.8.8.8"


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def post(client, path, data=None):
    return client.post(
        path, json.dumps(data or {}), content_type="application/json", REMOTE_ADDR=IP, secure=True
    )


@pytest.fixture
def conversation(employee):
    turn = services.start_turn(
        actor=employee, conversation_id=None, content="How do I file expenses?", model_name="m"
    )
    services.finish_answer(
        message_id=turn.answer.pk, content="Use the **form**.", finish_reason="stop"
    )
    return turn.conversation


@pytest.fixture
def intruder(client, other_employee):
    login_2fa(client, other_employee)
    return client


def test_the_chat_page_is_served_to_a_verified_user(employee_client):
    response = get(employee_client, "/")

    assert response.status_code == 200
    assert b'data-ws-path="/ws/chat/"' in response.content


def test_the_list_has_the_users_conversations(employee_client, conversation):
    body = get(employee_client, "/chat/api/conversations").json()

    assert body["conversations"] == [
        {
            "id": str(conversation.pk),
            "title": "How do I file expenses?",
            "updated_at": body["conversations"][0]["updated_at"],
        }
    ]


def test_a_conversation_has_its_messages(employee_client, conversation):
    body = get(employee_client, f"/chat/api/conversations/{conversation.pk}").json()

    assert [(m["role"], m["content"], m["status"]) for m in body["messages"]] == [
        ("user", "How do I file expenses?", "complete"),
        ("assistant", "Use the **form**.", "complete"),
    ]


def test_another_user_sees_nothing_of_it(intruder, conversation):
    assert get(intruder, "/chat/api/conversations").json() == {"conversations": []}
    assert get(intruder, f"/chat/api/conversations/{conversation.pk}").status_code == 404
    assert (
        post(
            intruder, f"/chat/api/conversations/{conversation.pk}/rename", {"title": "x"}
        ).status_code
        == 404
    )
    assert post(intruder, f"/chat/api/conversations/{conversation.pk}/delete").status_code == 404
    assert get(intruder, f"/chat/conversations/{conversation.pk}/export.md").status_code == 404
    conversation.refresh_from_db()
    assert conversation.title == "How do I file expenses?"


def test_rename_is_stored_and_recorded(employee_client, conversation):
    response = post(
        employee_client,
        f"/chat/api/conversations/{conversation.pk}/rename",
        {"title": "  Expenses  "},
    )

    assert response.json()["title"] == "Expenses"
    conversation.refresh_from_db()
    assert conversation.title == "Expenses"
    assert (
        AuditEvent.objects.get(action="conversation.renamed").target
        == f"chat.conversation:{conversation.pk}"
    )


def test_an_empty_title_is_refused(employee_client, conversation):
    response = post(
        employee_client, f"/chat/api/conversations/{conversation.pk}/rename", {"title": " "}
    )

    assert response.status_code == 400
    assert response.json()["error"]["detail"] == "A title cannot be empty."


def test_delete_removes_the_conversation_and_is_recorded(employee_client, conversation):
    response = post(employee_client, f"/chat/api/conversations/{conversation.pk}/delete")

    assert response.json() == {"deleted": str(conversation.pk)}
    assert get(employee_client, f"/chat/api/conversations/{conversation.pk}").status_code == 404
    assert AuditEvent.objects.get(action="conversation.deleted").details == {"message_count": 2}


def test_export_as_markdown_and_json(employee_client, conversation):
    markdown = get(employee_client, f"/chat/conversations/{conversation.pk}/export.md")
    as_json = get(employee_client, f"/chat/conversations/{conversation.pk}/export.json")

    assert markdown["Content-Type"].startswith("text/markdown")
    assert "attachment" in markdown["Content-Disposition"]
    assert b"# How do I file expenses?" in markdown.content
    assert b"Use the **form**." in markdown.content
    assert [m["content"] for m in json.loads(as_json.content)["messages"]] == [
        "How do I file expenses?",
        "Use the **form**.",
    ]
    assert AuditEvent.objects.filter(action="conversation.exported").count() == 2


def test_posting_without_the_csrf_token_is_refused(employee):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    login_2fa(client, employee)
    turn = services.start_turn(actor=employee, conversation_id=None, content="q", model_name="m")

    response = client.post(
        f"/chat/api/conversations/{turn.conversation.pk}/delete", REMOTE_ADDR=IP, secure=True
    )

    assert response.status_code == 403


def test_worker_status_follows_the_heartbeats(employee_client):
    assert get(employee_client, "/chat/api/status").json() == {
        "state": "no_worker",
        "model": None,
        "workers": 0,
    }

    registry.beat("w1", {"state": "ready", "model": "SmolLM2-135M-Instruct"})

    assert get(employee_client, "/chat/api/status").json() == {
        "state": "ready",
        "model": "SmolLM2-135M-Instruct",
        "workers": 1,
    }
    registry.forget("w1")
