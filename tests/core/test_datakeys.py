"""Per-user data keys: content sealed under its owner's key reads until the key is destroyed,
then shows as erased, whatever copy of the database it is read from."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from chat import services
from chat.models import Conversation, Message
from core import crypto, datakeys

pytestmark = pytest.mark.django_db

SECRET = "The merger with Globex closes on 14 March"


def a_conversation(user, content=SECRET) -> Conversation:
    turn = services.start_turn(actor=user, conversation_id=None, content=content, model_name="m")
    services.finish_answer(message_id=turn.answer.pk, content="Noted.", finish_reason="stop")
    return turn.conversation


def stored(model, field, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT "{field}" FROM "{model._meta.db_table}" WHERE id = %s',  # noqa: S608
            [pk.hex if connection.vendor == "sqlite" else pk],
        )
        return cursor.fetchone()[0]


def test_a_conversation_is_sealed_under_a_key_of_its_own_in_its_owners_key_store(employee):
    conversation = a_conversation(employee)

    token = stored(Conversation, "title", conversation.pk)
    ref = datakeys.conversation_key(employee.pk, conversation.pk)
    assert token.startswith(f"dk1:{employee.pk}:conversation-{conversation.pk}:")
    assert "Globex" not in token
    path = datakeys.store_dir() / str(employee.pk) / f"conversation-{conversation.pk}"
    assert datakeys.exists(ref) and path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert datakeys.store_dir().stat().st_mode & 0o777 == 0o700
    # The file holds the key wrapped by the keyring, never the key itself.
    assert crypto.keyring().decrypt(path.read_bytes().strip())


def test_destroying_a_conversations_key_erases_it_and_nothing_else(employee, other_employee):
    erased = a_conversation(employee)
    kept = a_conversation(employee, "Lunch at noon")
    other = a_conversation(other_employee, "Budget for 2027")

    assert datakeys.destroy(datakeys.conversation_key(employee.pk, erased.pk))

    erased = Conversation.objects.get(pk=erased.pk)
    assert erased.title == datakeys.ERASED
    assert isinstance(erased.title, datakeys.Erased)
    assert {m.content for m in erased.messages.all()} == {datakeys.ERASED}
    assert Conversation.objects.get(pk=kept.pk).title == "Lunch at noon"
    assert Conversation.objects.get(pk=other.pk).title == "Budget for 2027"


def test_destroying_a_users_keys_erases_all_their_content_and_only_theirs(employee, other_employee):
    a_conversation(employee)
    a_conversation(employee, "Second one")
    a_conversation(other_employee, "Budget for 2027")

    assert datakeys.destroy_owner(employee.pk) == 2

    assert {c.title for c in Conversation.objects.filter(user=employee)} == {datakeys.ERASED}
    assert [c.title for c in Conversation.objects.filter(user=other_employee)] == [
        "Budget for 2027"
    ]


def test_a_newer_key_under_the_same_name_does_not_open_what_the_destroyed_one_sealed(employee):
    conversation = a_conversation(employee)
    ref = datakeys.conversation_key(employee.pk, conversation.pk)
    old_token = stored(Conversation, "title", conversation.pk)
    datakeys.destroy(ref)

    datakeys.seal(ref, "something new")

    assert datakeys.exists(ref)
    assert crypto.decrypt(old_token) == datakeys.ERASED


def test_an_erased_value_saved_again_is_stored_as_erased_and_stays_so(employee):
    conversation = a_conversation(employee)
    datakeys.destroy(datakeys.conversation_key(employee.pk, conversation.pk))
    conversation = Conversation.objects.get(pk=conversation.pk)

    conversation.save(update_fields=["title"])

    assert stored(Conversation, "title", conversation.pk) == datakeys.ERASED_TOKEN
    assert Conversation.objects.get(pk=conversation.pk).title == datakeys.ERASED


def test_a_queryset_update_of_sealed_content_is_refused_with_how_to_do_it(employee):
    conversation = a_conversation(employee)

    with pytest.raises(ValueError, match="change it by saving the row"), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(title="Renamed")

    assert Conversation.objects.get(pk=conversation.pk).title == SECRET


def test_a_data_key_wrapped_by_a_key_missing_from_the_keyring_fails_loudly(employee, settings):
    conversation = a_conversation(employee)
    settings.CHAT_KEYRING = [Fernet.generate_key().decode()]

    with pytest.raises(crypto.DecryptionError, match="missing from the keyring"):
        Conversation.objects.get(pk=conversation.pk)


def test_rewrapping_under_a_new_keyring_key_keeps_every_data_key(employee, settings):
    conversation = a_conversation(employee)
    old = settings.CHAT_KEYRING[0]
    new = Fernet.generate_key().decode()
    settings.CHAT_KEYRING = [new, old]

    assert datakeys.count_not_wrapped_under(Fernet(new)) == 1
    assert datakeys.rewrap_all() == 1

    settings.CHAT_KEYRING = [new]
    assert datakeys.count_not_wrapped_under(Fernet(new)) == 0
    assert Conversation.objects.get(pk=conversation.pk).title == SECRET


@pytest.mark.django_db(transaction=True)
def test_conversations_stored_under_the_keyring_move_to_data_keys_when_migrated(employee):
    executor = MigrationExecutor(connection)
    executor.migrate([("chat", "0001_conversations")])
    old = executor.loader.project_state([("chat", "0001_conversations")]).apps
    conversation = old.get_model("chat", "Conversation").objects.create(
        user_id=employee.pk, title=SECRET
    )
    old.get_model("chat", "Message").objects.create(
        conversation=conversation, role="user", content="Keep this between us"
    )
    assert stored(Conversation, "title", conversation.pk).startswith("gAAAAA")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert stored(Conversation, "title", conversation.pk).startswith(f"dk1:{employee.pk}:")
    migrated = Conversation.objects.get(pk=conversation.pk)
    assert migrated.title == SECRET
    assert [m.content for m in migrated.messages.all()] == ["Keep this between us"]
    datakeys.destroy(datakeys.conversation_key(employee.pk, conversation.pk))
    assert Message.objects.get(conversation=migrated).content == datakeys.ERASED
