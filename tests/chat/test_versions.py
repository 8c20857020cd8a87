"""Regenerated answers and edited questions keep what they replace as earlier versions."""

import json

import pytest

from audit.models import AuditEvent
from chat import exports, services
from chat.models import Message
from tests.chat.test_storage import every_stored_text
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db


def answered(turn, text):
    services.finish_answer(message_id=turn.answer.pk, content=text, finish_reason="stop")
    return turn


def conversation_with_two_turns(user):
    first = answered(
        services.start_turn(
            actor=user, conversation_id=None, content="First question", model_name="m"
        ),
        "First answer",
    )
    conversation_id = first.conversation.pk
    second = answered(
        services.start_turn(
            actor=user, conversation_id=conversation_id, content="Second question", model_name="m"
        ),
        "Second answer",
    )
    return first, second


def shown(conversation):
    conversation.refresh_from_db()
    return [m.content for m in services.thread(conversation)]


def test_regenerating_keeps_the_old_answer_as_an_earlier_version(employee):
    first, second = conversation_with_two_turns(employee)

    again = services.regenerate(
        actor=employee, conversation_id=first.conversation.pk, model_name="m"
    )
    answered(again, "Second answer, again")

    assert again.answer.parent_id == second.question.pk
    assert again.history == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"},
    ]
    conversation = first.conversation
    assert shown(conversation) == [
        "First question",
        "First answer",
        "Second question",
        "Second answer, again",
    ]
    versions = exports.thread_as_dicts(conversation)[-1]["versions"]
    assert versions == [str(second.answer.pk), str(again.answer.pk)]
    event = AuditEvent.objects.get(action="generation.regenerated")
    assert event.details["replaces"] == str(second.answer.pk)
    assert event.details["message_id"] == str(again.answer.pk)
    assert event.details["version"] == 2
    assert "Second" not in json.dumps(event.details)


def test_an_earlier_version_can_be_shown_again_and_the_next_question_follows_it(employee):
    first, second = conversation_with_two_turns(employee)
    conversation = first.conversation
    answered(
        services.regenerate(actor=employee, conversation_id=conversation.pk, model_name="m"),
        "Second answer, again",
    )

    services.show_version(actor=employee, conversation=conversation, message_id=second.answer.pk)

    assert shown(conversation)[-1] == "Second answer"
    assert AuditEvent.objects.filter(action="conversation.version_shown").count() == 1
    third = services.start_turn(
        actor=employee, conversation_id=conversation.pk, content="Third", model_name="m"
    )
    assert third.question.parent_id == second.answer.pk
    assert [m["content"] for m in third.history][-2:] == ["Second answer", "Third"]


def test_editing_a_question_continues_from_it_and_keeps_the_old_tail(employee):
    first, _second = conversation_with_two_turns(employee)
    conversation = first.conversation

    edited = services.edit_and_resend(
        actor=employee,
        conversation_id=conversation.pk,
        message_id=first.question.pk,
        content="First question, better put",
        model_name="m",
    )
    answered(edited, "A better answer")

    assert edited.history == [{"role": "user", "content": "First question, better put"}]
    assert shown(conversation) == ["First question, better put", "A better answer"]
    thread = exports.thread_as_dicts(conversation)
    assert thread[0]["versions"] == [str(first.question.pk), str(edited.question.pk)]
    # The old question shows the whole old tail again.
    services.show_version(actor=employee, conversation=conversation, message_id=first.question.pk)
    assert shown(conversation) == [
        "First question",
        "First answer",
        "Second question",
        "Second answer",
    ]
    event = AuditEvent.objects.get(action="message.edited")
    assert event.details["replaces"] == str(first.question.pk)
    assert event.details["content_length"] == len("First question, better put")


def test_only_a_question_of_the_thread_shown_can_be_edited(employee, other_employee):
    first, second = conversation_with_two_turns(employee)
    for message_id in (second.answer.pk, "not-an-id"):
        with pytest.raises(services.MessageNotFound):
            services.edit_and_resend(
                actor=employee,
                conversation_id=first.conversation.pk,
                message_id=message_id,
                content="x",
                model_name="m",
            )
    with pytest.raises(services.ConversationNotFound):
        services.edit_and_resend(
            actor=other_employee,
            conversation_id=first.conversation.pk,
            message_id=first.question.pk,
            content="x",
            model_name="m",
        )
    assert not AuditEvent.objects.filter(action="message.edited").exists()


def test_nothing_is_regenerated_while_an_answer_is_being_written(employee):
    turn = services.start_turn(actor=employee, conversation_id=None, content="q", model_name="m")
    with pytest.raises(services.GenerationInProgress):
        services.regenerate(actor=employee, conversation_id=turn.conversation.pk, model_name="m")
    with pytest.raises(services.GenerationInProgress):
        services.show_version(
            actor=employee, conversation=turn.conversation, message_id=turn.question.pk
        )
    assert Message.objects.filter(role="assistant").count() == 1


def test_the_export_holds_every_version(employee):
    first, _second = conversation_with_two_turns(employee)
    conversation = first.conversation
    answered(
        services.regenerate(actor=employee, conversation_id=conversation.pk, model_name="m"),
        "Second answer, again",
    )

    _, markdown = exports.export(actor=employee, conversation=conversation, export_format="md")
    _, body = exports.export(actor=employee, conversation=conversation, export_format="json")

    assert markdown.index("Second answer, again") < markdown.index("# Earlier versions")
    assert markdown.index("# Earlier versions") < markdown.index("Second answer\n")
    assert "(version 1 of 2)" in markdown
    exported = json.loads(body)
    assert len(exported["messages"]) == 5
    assert len(exported["thread"]) == 4
    assert {m["content"] for m in exported["messages"]} >= {"Second answer", "Second answer, again"}


def test_versions_are_stored_encrypted(employee):
    first, _ = conversation_with_two_turns(employee)
    answered(
        services.regenerate(actor=employee, conversation_id=first.conversation.pk, model_name="m"),
        "Regenerated secret answer",
    )

    assert "Regenerated secret" not in every_stored_text()


def test_the_page_flips_to_another_version_and_gets_the_thread_back(employee_client, employee):
    first, second = conversation_with_two_turns(employee)
    conversation = first.conversation
    answered(
        services.regenerate(actor=employee, conversation_id=conversation.pk, model_name="m"),
        "Second answer, again",
    )
    url = f"/chat/api/conversations/{conversation.pk}/version"

    response = employee_client.post(
        url, {"message": str(second.answer.pk)}, content_type="application/json", secure=True
    )
    refused = employee_client.post(
        url, {"message": str(conversation.pk)}, content_type="application/json", secure=True
    )

    assert response.status_code == 200
    assert response.json()["messages"][-1]["content"] == "Second answer"
    assert refused.status_code == 404
    assert "not in this conversation" in refused.json()["error"]["detail"]


def test_someone_else_cannot_flip_versions(client, other_employee, employee):
    first, second = conversation_with_two_turns(employee)
    login_2fa(client, other_employee)

    response = client.post(
        f"/chat/api/conversations/{first.conversation.pk}/version",
        {"message": str(second.answer.pk)},
        content_type="application/json",
        secure=True,
    )

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="conversation.version_shown").exists()
