"""A conversation an API call started (API_STORE_CONVERSATIONS) says so, with its token, in
the list, the conversation, search results and both exports; a page conversation does not."""

import json

import pytest

from audit.models import AuditEvent
from chat import services
from chat.models import Conversation

pytestmark = pytest.mark.django_db

IP = "10.8.8.8"
# A token name as its owner typed it: whatever it holds stays text.
TOKEN_NAME = '<img src=x onerror="alert(1)"> notebook'
PREFIX = "llm-AbCd1234"


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def start(user, content, api_caller=None):
    turn = services.start_turn(
        actor=user,
        conversation_id=None,
        content=content,
        model_name="m",
        api_caller=api_caller,
    )
    services.finish_answer(
        message_id=turn.answer.pk, content=f"Answer to {content}", finish_reason="stop"
    )
    return turn.conversation


@pytest.fixture
def from_api(employee):
    caller = services.ApiCaller(token_name=TOKEN_NAME, token_prefix=PREFIX)
    return start(employee, "Summarise the Aurora report", caller)


@pytest.fixture
def from_page(employee):
    return start(employee, "Plan the Aurora offsite")


API_ORIGIN = {"origin": "api", "api_token": {"name": TOKEN_NAME, "prefix": PREFIX}}
PAGE_ORIGIN = {"origin": "page", "api_token": None}


def test_the_conversation_an_api_call_starts_is_marked_with_its_token(from_api, from_page):
    from_api.refresh_from_db()
    from_page.refresh_from_db()

    assert from_api.origin == Conversation.Origin.API
    assert (from_api.api_token_name, from_api.api_token_prefix) == (TOKEN_NAME, PREFIX)
    assert from_page.origin == Conversation.Origin.PAGE
    assert (from_page.api_token_name, from_page.api_token_prefix) == ("", "")
    created = AuditEvent.objects.filter(action="conversation.created").order_by("sequence")
    assert [e.details["origin"] for e in created] == ["api", "page"]


def test_the_list_and_the_conversation_say_where_it_was_started(
    employee_client, from_api, from_page
):
    listed = get(employee_client, "/chat/api/conversations").json()["conversations"]
    opened_api = get(employee_client, f"/chat/api/conversations/{from_api.pk}").json()
    opened_page = get(employee_client, f"/chat/api/conversations/{from_page.pk}").json()

    by_id = {item["id"]: item for item in listed}
    assert {k: by_id[str(from_api.pk)][k] for k in API_ORIGIN} == API_ORIGIN
    assert {k: by_id[str(from_page.pk)][k] for k in PAGE_ORIGIN} == PAGE_ORIGIN
    assert {k: opened_api[k] for k in API_ORIGIN} == API_ORIGIN
    assert {k: opened_page[k] for k in PAGE_ORIGIN} == PAGE_ORIGIN


def test_search_results_say_where_their_conversation_was_started(
    employee_client, from_api, from_page
):
    found = employee_client.post(
        "/chat/api/search", {"q": "aurora"}, content_type="application/json", secure=True
    ).json()["results"]

    origins = {r["conversation"]: (r["origin"], r["api_token"]) for r in found}
    assert origins == {
        str(from_api.pk): ("api", API_ORIGIN["api_token"]),
        str(from_page.pk): ("page", None),
    }


def test_the_exports_say_an_api_call_started_it(employee_client, from_api, from_page):
    markdown = get(employee_client, f"/chat/conversations/{from_api.pk}/export.md")
    as_json = json.loads(
        get(employee_client, f"/chat/conversations/{from_api.pk}/export.json").content
    )
    page_markdown = get(employee_client, f"/chat/conversations/{from_page.pk}/export.md")
    page_json = json.loads(
        get(employee_client, f"/chat/conversations/{from_page.pk}/export.json").content
    )

    assert (
        f"_Started by an API call with the token “{TOKEN_NAME}” ({PREFIX}…)._"
        in markdown.content.decode()
    )
    assert {k: as_json[k] for k in API_ORIGIN} == API_ORIGIN
    assert b"API call" not in page_markdown.content
    assert {k: page_json[k] for k in PAGE_ORIGIN} == PAGE_ORIGIN
