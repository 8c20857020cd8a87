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
            "pinned": False,
            "archived": False,
            "origin": "page",
            "api_token": None,
        }
    ]
    assert body["next"] is None


def test_a_conversation_has_its_messages(employee_client, conversation):
    body = get(employee_client, f"/chat/api/conversations/{conversation.pk}").json()

    assert [(m["role"], m["content"], m["status"]) for m in body["messages"]] == [
        ("user", "How do I file expenses?", "complete"),
        ("assistant", "Use the **form**.", "complete"),
    ]


def test_another_user_sees_nothing_of_it(intruder, conversation):
    assert get(intruder, "/chat/api/conversations").json()["conversations"] == []
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
        "models": [{"name": "SmolLM2-135M-Instruct", "state": "no_worker"}],
        "default": "SmolLM2-135M-Instruct",
    }

    registry.beat("w1", {"state": "ready", "model": "SmolLM2-135M-Instruct"})
    registry.beat("w2", {"state": "loading", "model": "bigger-model"})

    assert get(employee_client, "/chat/api/status").json() == {
        "state": "ready",
        "model": "SmolLM2-135M-Instruct",
        "workers": 1,
        "models": [
            {"name": "SmolLM2-135M-Instruct", "state": "ready"},
            {"name": "bigger-model", "state": "loading"},
        ],
        "default": "SmolLM2-135M-Instruct",
    }
    registry.forget("w1")
    registry.forget("w2")


def rename_with(client, conversation, body):
    return client.post(
        f"/chat/api/conversations/{conversation.pk}/rename",
        body,
        content_type="application/json",
        REMOTE_ADDR=IP,
        secure=True,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"title": ' + "[" * 1500 + "]" * 1500 + "}", "nested more than"),
        ('{"title": "\\ud800"}', "lone surrogate"),
        (b'{"title": "caf\xe9"}', "not UTF-8"),
        ('{"title": NaN}', "not valid JSON"),
        ('{"title": "Budget"', "not valid JSON"),
    ],
)
def test_a_malformed_rename_body_gets_a_json_400_with_a_plain_sentence(
    employee_client, conversation, body, reason
):
    response = rename_with(employee_client, conversation, body)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert reason in error["detail"]
    assert '{"title": "New name"}' in error["detail"]
    assert "codec" not in error["detail"]
    conversation.refresh_from_db()
    assert conversation.title == "How do I file expenses?"


def test_a_rename_drops_control_and_direction_override_characters(employee_client, conversation):
    response = post(
        employee_client,
        f"/chat/api/conversations/{conversation.pk}/rename",
        {"title": "\u202eexe.Budget\u0000 2025\u2066 plan\u2069\u200b\n"},
    )

    assert response.json()["title"] == "exe.Budget 2025 plan"
    conversation.refresh_from_db()
    assert conversation.title == "exe.Budget 2025 plan"


def test_a_title_of_control_characters_only_is_refused_as_empty(employee_client, conversation):
    response = post(
        employee_client,
        f"/chat/api/conversations/{conversation.pk}/rename",
        {"title": "\u202e\u0000\u2066"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["detail"] == "A title cannot be empty."


def test_a_new_conversation_is_titled_without_control_or_override_characters(employee):
    turn = services.start_turn(
        actor=employee,
        conversation_id=None,
        content="\u202dHello\u0007 \u2067world\u2069\x1b[31m?",
        model_name="m",
    )

    assert turn.conversation.title == "Hello world[31m?"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/chat/api/conversations/{pk}"),
        ("post", "/chat/api/conversations/{pk}/rename"),
        ("post", "/chat/api/conversations/{pk}/delete"),
        ("get", "/chat/conversations/{pk}/export.md"),
    ],
)
def test_trying_another_users_conversation_is_recorded_as_a_probe(
    intruder, other_employee, conversation, method, path
):
    url = path.format(pk=conversation.pk)
    response = get(intruder, url) if method == "get" else post(intruder, url, {"title": "x"})

    assert response.status_code == 404
    event = AuditEvent.objects.get(action="conversation.not_found")
    assert (event.outcome, event.target, event.source_ip) == ("denied", str(conversation.pk), IP)
    assert event.actor_id == other_employee.pk
    assert event.details == {"channel": "http"}


def test_probes_from_one_address_are_recorded_at_most_twenty_a_minute(intruder):
    for number in range(25):
        get(intruder, f"/chat/api/conversations/00000000-0000-0000-0000-{number:012d}")

    assert AuditEvent.objects.filter(action="conversation.not_found").count() == 20
