"""Rotating the Django secret key and the chat keyring with their commands."""

import io
import json
import stat

import pytest
from cryptography.fernet import Fernet
from django.core import signing
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from chat import services
from chat.models import Conversation, Message
from core import keys
from tests.support import personas

pytestmark = pytest.mark.django_db

SECRET = "The merger with Globex closes on 14 March"


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _rotated(kind):
    return [
        e.details
        for e in AuditEvent.objects.filter(action="keys.rotated").order_by("sequence")
        if e.details["kind"] == kind
    ]


# --- The Django secret key ---------------------------------------------------------------


@pytest.fixture
def secret_key_file(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings.VAR_DIR = tmp_path
    keys.ensure_keys(tmp_path)
    path = keys.keys_dir(tmp_path) / keys.SECRET_KEY_FILE
    restart_web(settings, path)
    return path


def restart_web(settings, path):
    """What a restarted web process does: the first line signs, the others are fallbacks."""
    settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS = keys.read_key_file(path)


def rotate_secret_key(**options) -> str:
    out = io.StringIO()
    call_command("rotate_secret_key", stdout=out, **options)
    return out.getvalue()


def chat_page(client):
    return client.get("/", REMOTE_ADDR="10.0.0.1", secure=True)


def signed_in(client, employee):
    personas.login_2fa(client, employee)
    assert chat_page(client).status_code == 200
    return client


def test_a_session_signed_with_the_old_key_survives_the_rotation(
    settings, secret_key_file, client, employee
):
    signed_in(client, employee)
    old_key = settings.SECRET_KEY
    link = signing.dumps({"user": employee.pk})

    rotate_secret_key()
    restart_web(settings, secret_key_file)

    assert old_key != settings.SECRET_KEY
    assert [old_key] == settings.SECRET_KEY_FALLBACKS
    assert chat_page(client).status_code == 200
    assert signing.loads(link) == {"user": employee.pk}


def test_dropping_the_old_key_ends_sessions_that_still_depend_on_it(
    settings, secret_key_file, client, employee
):
    signed_in(client, employee)
    link = signing.dumps({"user": employee.pk})
    rotate_secret_key()

    output = rotate_secret_key(drop_old=True)
    restart_web(settings, secret_key_file)

    assert settings.SECRET_KEY_FALLBACKS == []
    response = chat_page(client)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    with pytest.raises(signing.BadSignature):
        signing.loads(link)
    assert "Removed the fallback keys" in output


def test_the_key_file_holds_the_new_key_and_one_fallback_with_mode_0600(settings, secret_key_file):
    first = settings.SECRET_KEY
    rotate_secret_key()
    second = keys.read_key_file(secret_key_file)[0]

    output = rotate_secret_key()

    third, fallback = keys.read_key_file(secret_key_file)
    assert fallback == second
    assert len({first, second, third}) == 3
    assert _mode(secret_key_file) == 0o600
    assert f"Older fallbacks removed: {keys.key_id('secret_key', first)}." in output


def test_each_step_is_recorded_with_key_ids_and_never_the_keys(settings, secret_key_file):
    old_key = settings.SECRET_KEY

    output = rotate_secret_key() + rotate_secret_key(drop_old=True)

    new_key = keys.read_key_file(secret_key_file)[0]
    old_id, new_id = keys.key_id("secret_key", old_key), keys.key_id("secret_key", new_key)
    assert _rotated("secret_key") == [
        {
            "kind": "secret_key",
            "step": "new_key",
            "old_key_id": old_id,
            "new_key_id": new_id,
            "dropped_key_ids": [],
        },
        {
            "kind": "secret_key",
            "step": "drop_old",
            "kept_key_id": new_id,
            "dropped_key_ids": [old_id],
        },
    ]
    for key in (old_key, new_key):
        assert key not in output
    assert "Restart every web process now" in output


def test_dropping_when_there_is_no_fallback_changes_nothing(settings, secret_key_file):
    before = secret_key_file.read_text()

    output = rotate_secret_key(drop_old=True)

    assert "nothing to drop" in output
    assert secret_key_file.read_text() == before
    assert _rotated("secret_key") == []


def test_a_secret_key_from_the_environment_is_not_rotated(secret_key_file, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 60)

    with pytest.raises(CommandError, match="SECRET_KEY is set in the environment"):
        rotate_secret_key()


# --- The chat keyring --------------------------------------------------------------------


@pytest.fixture
def keyring_file(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("CHAT_ENCRYPTION_KEYS", raising=False)
    settings.VAR_DIR = tmp_path
    keys.ensure_keys(tmp_path)
    path = keys.keys_dir(tmp_path) / keys.CHAT_KEYRING_FILE
    restart_everything(settings, path)
    return path


def restart_everything(settings, path):
    settings.CHAT_KEYRING = keys.read_key_file(path)


def rotate_chat_keys(**options) -> str:
    out = io.StringIO()
    call_command("rotate_chat_keys", stdout=out, **options)
    return out.getvalue()


def a_conversation(user):
    turn = services.start_turn(actor=user, conversation_id=None, content=SECRET, model_name="m")
    services.finish_answer(message_id=turn.answer.pk, content="Noted.", finish_reason="stop")


def test_the_three_steps_move_every_row_to_a_new_key_and_drop_the_old_one(
    settings, keyring_file, employee
):
    a_conversation(employee)
    old_key = settings.CHAT_KEYRING[0]

    rotate_chat_keys(add_key=True)
    restart_everything(settings, keyring_file)
    new_key = settings.CHAT_KEYRING[0]
    assert [new_key, old_key] == settings.CHAT_KEYRING
    rotate_chat_keys()
    rotate_chat_keys(drop_old=True)
    restart_everything(settings, keyring_file)

    assert [new_key] == settings.CHAT_KEYRING
    assert _mode(keyring_file) == 0o600
    assert Conversation.objects.get().title == SECRET
    assert {m.content for m in Message.objects.all()} == {SECRET, "Noted."}
    old_id, new_id = keys.key_id("chat", old_key), keys.key_id("chat", new_key)
    steps = _rotated("chat")
    assert [step["step"] for step in steps] == ["add_key", "re_encrypt", "drop_old"]
    assert steps[0]["old_key_id"] == old_id
    assert steps[0]["new_key_id"] == steps[1]["new_key_id"] == new_id
    assert steps[2]["dropped_key_ids"] == [old_id]
    assert new_key not in json.dumps(steps)


def test_adding_a_key_re_encrypts_nothing_until_every_process_has_it(
    settings, keyring_file, employee
):
    a_conversation(employee)
    old_key = settings.CHAT_KEYRING[0]

    output = rotate_chat_keys(add_key=True)

    # A process that has not restarted still reads everything with its old keyring.
    settings.CHAT_KEYRING = [old_key]
    assert Conversation.objects.get().title == SECRET
    assert "restart every web process and inference worker" in output


def test_old_keys_are_not_dropped_while_rows_still_need_them(settings, keyring_file, employee):
    a_conversation(employee)
    rotate_chat_keys(add_key=True)
    restart_everything(settings, keyring_file)
    before = keyring_file.read_text()

    with pytest.raises(
        CommandError,
        match=r"1 conversations \(title\), 1 conversations \(instructions\), 2 messages are still",
    ):
        rotate_chat_keys(drop_old=True)

    assert keyring_file.read_text() == before
    assert [step["step"] for step in _rotated("chat")] == ["add_key"]


def test_rows_written_under_the_new_key_do_not_block_dropping_the_old_one(
    settings, keyring_file, employee
):
    old_key = settings.CHAT_KEYRING[0]
    new_key = Fernet.generate_key().decode()
    keys.write_key_file(keyring_file, [new_key, old_key])
    restart_everything(settings, keyring_file)
    a_conversation(employee)

    rotate_chat_keys(drop_old=True)

    assert keys.read_key_file(keyring_file) == [new_key]
