"""Conversations are encrypted at rest; keys rotate without losing anything."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from accounts.models import TOTPDevice
from audit.models import AuditEvent
from chat import services
from chat.models import Conversation, Message
from core import crypto

pytestmark = pytest.mark.django_db

SECRET = "The merger with Globex closes on 14 March"


def a_turn(user, content=SECRET):
    turn = services.start_turn(actor=user, conversation_id=None, content=content, model_name="m")
    services.finish_answer(
        message_id=turn.answer.pk, content="Noted: " + content, finish_reason="stop"
    )
    return turn


def every_stored_text() -> str:
    """All text in every table, as raw SQL sees it."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            chunks.extend(str(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_no_plaintext_of_a_message_or_title_is_stored_anywhere(employee):
    a_turn(employee)

    stored = every_stored_text()

    assert "Globex" not in stored
    assert "merger" not in stored
    assert Message.objects.get(role="user").content == SECRET


def test_rotation_keeps_every_message_readable_under_the_new_key(employee, settings):
    a_turn(employee)
    TOTPDevice.objects.create(user=employee, confirmed=True)
    old_key = settings.CHAT_KEYRING[0]
    new_key = Fernet.generate_key().decode()
    settings.CHAT_KEYRING = [new_key, old_key]

    out = io.StringIO()
    call_command("rotate_chat_keys", stdout=out)

    assert "2 messages" in out.getvalue()
    settings.CHAT_KEYRING = [new_key]
    assert {m.content for m in Message.objects.all()} == {SECRET, "Noted: " + SECRET}
    assert Conversation.objects.get().title == SECRET
    assert len(TOTPDevice.objects.get().key) == 40
    assert AuditEvent.objects.get(action="keys.rotated").details["rows"]["messages"] == 2


def test_a_wrong_key_fails_loudly_instead_of_losing_data(employee, settings):
    a_turn(employee)
    settings.CHAT_KEYRING = [Fernet.generate_key().decode()]

    with pytest.raises(crypto.DecryptionError, match="missing from the keyring"):
        list(Message.objects.all())
    with pytest.raises(crypto.DecryptionError):
        crypto.check_keyring_opens_stored_data()


def test_a_malformed_key_is_a_clear_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.CHAT_KEYRING = ["not-a-fernet-key"]

    with pytest.raises(ImproperlyConfigured, match="not a Fernet key"):
        crypto.encrypt("x")


def test_the_title_comes_from_the_first_line_shortened(employee):
    turn = services.start_turn(
        actor=employee, conversation_id=None, content="x " * 100, model_name="m"
    )

    assert len(turn.conversation.title) == services.TITLE_MAX
    assert turn.conversation.title.endswith("…")


def test_an_answer_is_finished_only_once(employee):
    turn = services.start_turn(actor=employee, conversation_id=None, content="q", model_name="m")

    first = services.finish_answer(
        message_id=turn.answer.pk, content="partial", finish_reason="error"
    )
    second = services.finish_answer(message_id=turn.answer.pk, content="full", finish_reason="stop")

    assert (first, second) == (True, False)
    assert Message.objects.get(pk=turn.answer.pk).content == "partial"


def test_a_second_question_waits_for_the_running_answer(employee):
    turn = services.start_turn(actor=employee, conversation_id=None, content="q", model_name="m")

    with pytest.raises(services.GenerationInProgress):
        services.start_turn(
            actor=employee, conversation_id=turn.conversation.pk, content="q2", model_name="m"
        )
