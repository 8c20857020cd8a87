"""Search over a user's own conversations: keyed filters, no plaintext anywhere."""

import pytest

from chat import conversation_search, search, services
from chat.models import Conversation, Message
from tests.chat.test_storage import every_stored_text

pytestmark = pytest.mark.django_db


def a_conversation(user, question, answer, title=None):
    turn = services.start_turn(actor=user, conversation_id=None, content=question, model_name="m")
    services.finish_answer(message_id=turn.answer.pk, content=answer, finish_reason="stop")
    if title:
        services.rename(actor=user, conversation=turn.conversation, title=title)
    return turn


def find(user, text):
    return conversation_search.search(user, search.Query.parse(text))["results"]


def test_a_word_only_in_an_answers_body_finds_that_answer(employee):
    a_conversation(employee, "Plans for the week", "Nothing special.")
    turn = a_conversation(
        employee, "Where is the meeting?", "The quarterly review is in the Aurora room."
    )

    results = find(employee, "aurora")

    assert [(r["conversation"], r["message"]) for r in results] == [
        (str(turn.conversation.pk), str(turn.answer.pk))
    ]
    snippet = results[0]["snippet"]
    start, end = snippet["matches"][0]
    assert snippet["text"][start:end] == "Aurora"
    assert results[0]["title"] == "Where is the meeting?"


def test_titles_and_word_beginnings_match_and_every_word_must_be_there(employee):
    titled = a_conversation(employee, "q", "a", title="Budget planning 2027")
    both = a_conversation(employee, "Quarterly budget figures", "Revenue grew.")

    assert {r["conversation"] for r in find(employee, "budg")} == {
        str(titled.conversation.pk),
        str(both.conversation.pk),
    }
    assert [r["message"] for r in find(employee, "budget planning")] == [None]
    assert find(employee, "budget zebra") == []
    # Inside a word is not the start of one.
    assert find(employee, "udget") == []


def test_someone_elses_conversations_are_never_found(employee, other_employee):
    a_conversation(other_employee, "The Aurora project", "Secret plans.")

    assert find(employee, "aurora") == []


def test_earlier_versions_are_found_too(employee):
    turn = a_conversation(employee, "q", "An answer about lighthouses.")
    again = services.regenerate(
        actor=employee, conversation_id=turn.conversation.pk, model_name="m"
    )
    services.finish_answer(
        message_id=again.answer.pk, content="Something else.", finish_reason="stop"
    )

    assert [r["message"] for r in find(employee, "lighthouses")] == [str(turn.answer.pk)]


def test_no_word_of_the_text_is_stored_in_the_filters(employee):
    a_conversation(employee, "Zanzibar harbour", "Zanzibar is an island.")

    stored = every_stored_text()

    assert "zanzibar" not in stored.lower()
    assert "harbour" not in stored.lower()


def test_rows_without_filters_or_under_an_older_key_are_still_found(employee, settings):
    from cryptography.fernet import Fernet

    turn = a_conversation(employee, "q", "The Orion launch slipped.")
    Message.objects.filter(pk=turn.answer.pk).update(search_bits=None)
    old = a_conversation(employee, "q", "Orion again.")
    settings.CHAT_KEYRING = [Fernet.generate_key().decode(), *settings.CHAT_KEYRING]

    assert {r["message"] for r in find(employee, "orion")} == {
        str(turn.answer.pk),
        str(old.answer.pk),
    }


def test_the_filters_let_few_rows_through_for_a_word_that_is_nowhere(employee):
    vocabulary = [f"word{n}x" for n in range(400)]
    texts = [" ".join(vocabulary[i : i + 60]) for i in range(0, 300, 3)]
    bits = [search.bits_for(text) for text in texts]
    absent = search.Query.parse("nowhere").filter()

    passed = sum(absent.may_match(b) for b in bits)

    assert passed <= len(bits) * 0.1
    present = search.Query.parse("word10x").filter()
    assert all(present.may_match(b) for b, t in zip(bits, texts, strict=True) if "word10x" in t)


@pytest.mark.parametrize(
    "text", ["", "   ", "a", "!!!", "x" * 300, " ".join(["word"] * 3 + list("abcdefghi"))]
)
def test_queries_that_cannot_be_searched_say_what_to_type(text):
    with pytest.raises(search.QueryInvalid):
        search.Query.parse(text)


def test_the_search_api_takes_the_words_in_a_post_body(employee_client, employee):
    turn = a_conversation(employee, "q", "The Aurora room.")

    found = employee_client.post(
        "/chat/api/search", {"q": "aurora"}, content_type="application/json", secure=True
    )
    refused = employee_client.post(
        "/chat/api/search", {"q": "a"}, content_type="application/json", secure=True
    )
    by_get = employee_client.get("/chat/api/search?q=aurora", secure=True)

    assert found.status_code == 200
    assert found.json()["results"][0]["message"] == str(turn.answer.pk)
    assert refused.status_code == 400
    assert "at least 2 characters" in refused.json()["error"]["detail"]
    assert by_get.status_code == 405
    assert Conversation.objects.count() == 1


def test_the_database_hands_out_only_the_rows_whose_filters_may_match(employee):
    from chat.conversation_search import _search_candidates

    turns = [
        a_conversation(employee, f"Question {n}", f"Answer number {n} of many.") for n in range(40)
    ]
    marked = a_conversation(employee, "q", "The Orion launch slipped.")

    _, found = _search_candidates(employee, search.Query.parse("orion").filter())

    candidates = {str(pk) for rows in found.values() for _, pk in rows}
    assert str(marked.answer.pk).replace("-", "") in {c.replace("-", "") for c in candidates}
    # 81 messages without the word: the filters let at most a few through.
    assert len(candidates) <= 4
    assert len(turns) == 40
