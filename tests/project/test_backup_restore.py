"""`manage.py backup` and `manage.py restore` on the embedded SQLite database: what each
archive holds, and every refusal a restore owes the operator before it changes anything."""

import hashlib
import io
import json
import stat
import tarfile

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from audit.chain import verify
from audit.models import AuditEvent
from chat import services
from chat.models import Conversation, Message
from core.keys import (
    AUDIT_HMAC_KEY_FILE,
    CHAT_KEYRING_FILE,
    ENVIRONMENT_VARIABLES,
    SECRET_KEY_FILE,
    key_id,
    keys_dir,
)
from project.backup.archive import FORMAT_VERSION, app_version
from project.backup.database import postgres_tool
from project.backup.errors import BackupError
from project.backup.restore_keys import main as restore_keys_main

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "The merger with Globex closes on 14 March"
ANSWER = "Noted: the Globex merger closes on 14 March."


@pytest.fixture
def var_dir(tmp_path, settings, monkeypatch):
    """A state directory whose key files hold exactly the keys the settings use."""
    for variable in ENVIRONMENT_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    settings.VAR_DIR = tmp_path / "var"
    directory = keys_dir(settings.VAR_DIR)
    directory.mkdir(mode=0o700, parents=True)
    for name, lines in (
        (SECRET_KEY_FILE, [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]),
        (CHAT_KEYRING_FILE, settings.CHAT_KEYRING),
        (AUDIT_HMAC_KEY_FILE, settings.AUDIT_HMAC_KEYS),
    ):
        path = directory / name
        path.write_text("".join(f"{line}\n" for line in lines))
        path.chmod(0o600)
    return settings.VAR_DIR


@pytest.fixture
def conversation(employee):
    turn = services.start_turn(
        actor=employee, conversation_id=None, content=QUESTION, model_name="test-model"
    )
    services.finish_answer(message_id=turn.answer.pk, content=ANSWER, finish_reason="stop")
    return turn.conversation


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def make_backup(tmp_path, *args: str) -> tuple[str, object, object]:
    output = run(
        "backup", "--output", str(tmp_path / "db"), "--keys-output", str(tmp_path / "k"), *args
    )
    databases = list((tmp_path / "db").glob("chat-db-*.tar"))
    key_archives = list((tmp_path / "k").glob("chat-keys-*.tar"))
    assert len(databases) == 1
    return output, databases[0], key_archives[0] if key_archives else None


def members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


def rewrite(source, target, change) -> None:
    """A copy of the archive at ``source`` with ``change`` applied to its {name: bytes}."""
    contents = members(source)
    change(contents)
    with tarfile.open(target, "w") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def change_manifest(edit):
    def change(contents):
        manifest = json.loads(contents["manifest.json"])
        edit(manifest, contents)
        contents["manifest.json"] = json.dumps(manifest).encode()

    return change


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- What the archives hold ---------------------------------------------------------------


def test_the_database_archive_says_what_it_holds_with_a_checksum_of_each_member(
    var_dir, conversation, tmp_path
):
    _, database, _ = make_backup(tmp_path)

    contents = members(database)
    manifest = json.loads(contents["manifest.json"])
    assert set(contents) == {"manifest.json", "database.sqlite3"}
    assert manifest["kind"] == "database"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["database"]["vendor"] == "sqlite"
    assert manifest["app_version"] == app_version() != "unknown"
    assert manifest["created_at"].endswith("+00:00")
    assert "0001_conversations" in manifest["migrations"]["chat"]
    assert manifest["members"]["database.sqlite3"] == {
        "sha256": hashlib.sha256(contents["database.sqlite3"]).hexdigest(),
        "size": len(contents["database.sqlite3"]),
    }


def test_the_database_archive_holds_no_key_and_no_word_of_any_conversation(
    var_dir, conversation, tmp_path, settings
):
    _, database, _ = make_backup(tmp_path)

    data = database.read_bytes()
    assert b"Globex" not in data
    assert b"merger" not in data
    secrets = [settings.SECRET_KEY, *settings.CHAT_KEYRING, *settings.AUDIT_HMAC_KEYS]
    for secret in secrets:
        assert secret.encode() not in data
    # The ids that let a restore check its keys are digests, not the keys.
    manifest = json.loads(members(database)["manifest.json"])
    assert manifest["key_ids"][CHAT_KEYRING_FILE] == [
        key_id("chat", key) for key in settings.CHAT_KEYRING
    ]


def test_the_key_archive_is_a_separate_file_readable_by_its_owner_only(
    var_dir, conversation, tmp_path, settings
):
    output, database, key_archive = make_backup(tmp_path)

    assert mode(key_archive) == 0o600
    assert mode(database) == 0o600
    contents = members(key_archive)
    assert json.loads(contents["manifest.json"])["kind"] == "keys"
    assert contents[f"keys/{CHAT_KEYRING_FILE}"].decode().split() == settings.CHAT_KEYRING
    assert set(contents) == {
        "manifest.json",
        f"keys/{SECRET_KEY_FILE}",
        f"keys/{CHAT_KEYRING_FILE}",
        f"keys/{AUDIT_HMAC_KEY_FILE}",
        f"data-keys/{conversation.user_id}/conversation-{conversation.pk}",
    }
    assert "Store the key archive apart from the database archive" in output
    assert "and 1 data keys" in output


def test_a_key_from_the_environment_is_left_out_and_the_output_says_to_back_it_up_there(
    var_dir, conversation, tmp_path, settings, monkeypatch
):
    monkeypatch.setenv("CHAT_ENCRYPTION_KEYS", ",".join(settings.CHAT_KEYRING))

    output, _, key_archive = make_backup(tmp_path)

    assert f"keys/{CHAT_KEYRING_FILE}" not in members(key_archive)
    assert f"keys/{AUDIT_HMAC_KEY_FILE}" in members(key_archive)
    assert "CHAT_ENCRYPTION_KEYS comes from the environment, so it is not in the key archive" in (
        output
    )


def test_no_keys_writes_the_database_archive_alone(var_dir, conversation, tmp_path):
    output, _, key_archive = make_backup(tmp_path, "--no-keys")

    assert key_archive is None
    assert "No key archive (--no-keys)" in output


def test_a_backup_is_recorded_in_the_audit_log_with_names_and_no_secret(
    var_dir, conversation, tmp_path
):
    _, database, key_archive = make_backup(tmp_path)

    event = AuditEvent.objects.get(action="backup.created")
    assert event.outcome == "success"
    assert event.details["archives"] == [database.name, key_archive.name]
    assert event.details["database_sha256"] == hashlib.sha256(database.read_bytes()).hexdigest()


# --- Restoring ----------------------------------------------------------------------------


def test_a_restore_brings_back_a_deleted_conversation_readable_with_the_audit_chain_intact(
    var_dir, conversation, employee, tmp_path
):
    _, database, key_archive = make_backup(tmp_path)
    services.delete(actor=employee, conversation=conversation)
    assert not Conversation.objects.exists()

    output = run("restore", str(database), "--keys", str(key_archive), "--yes")

    restored = Conversation.objects.get()
    assert restored.title == QUESTION
    assert [m.content for m in restored.messages.order_by("created_at")] == [QUESTION, ANSWER]
    assert verify().intact
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event.action == "backup.restored"
    assert event.outcome == "success"
    assert not AuditEvent.objects.filter(action="conversation.deleted").exists()
    assert "Keyring check: the chat keyring opens the stored data" in output
    assert "the audit chain is intact" in output
    assert f"recorded as audit event #{event.sequence}" in output


def test_a_restore_refuses_an_archive_whose_database_does_not_match_its_checksum(
    var_dir, conversation, tmp_path
):
    _, database, _ = make_backup(tmp_path)
    damaged = tmp_path / "damaged.tar"

    def flip_a_byte(contents):
        data = bytearray(contents["database.sqlite3"])
        data[5000] ^= 0xFF
        contents["database.sqlite3"] = bytes(data)

    rewrite(database, damaged, flip_a_byte)

    with pytest.raises(
        CommandError, match=r"damaged: database\.sqlite3 does not match the checksum"
    ):
        run("restore", str(damaged), "--yes")
    assert Message.objects.count() == 2


def test_a_restore_refuses_a_file_that_is_not_a_whole_archive(var_dir, conversation, tmp_path):
    _, database, _ = make_backup(tmp_path)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(database.read_bytes()[:20000])

    with pytest.raises(CommandError, match="is not a backup archive, or it is damaged"):
        run("restore", str(truncated), "--yes")


def test_a_restore_refuses_the_key_archive_in_place_of_the_database_archive(
    var_dir, conversation, tmp_path
):
    _, _, key_archive = make_backup(tmp_path)

    with pytest.raises(CommandError, match="is a key archive, not a database archive"):
        run("restore", str(key_archive))


def test_a_restore_refuses_an_archive_made_by_a_later_version(var_dir, conversation, tmp_path):
    _, database, _ = make_backup(tmp_path)
    later = tmp_path / "later.tar"

    def add_migration(manifest, contents):
        manifest["migrations"]["chat"].append("0099_from_the_future")

    rewrite(database, later, change_manifest(add_migration))

    with pytest.raises(CommandError, match=r"made by a later version.*chat\.0099_from_the_future"):
        run("restore", str(later), "--yes")


def test_a_restore_refuses_a_postgresql_archive_on_the_embedded_database(
    var_dir, conversation, tmp_path
):
    _, database, _ = make_backup(tmp_path)
    other = tmp_path / "postgresql.tar"

    def as_postgresql(manifest, contents):
        manifest["database"]["vendor"] = "postgresql"
        manifest["members"]["database.pgdump"] = manifest["members"].pop("database.sqlite3")
        contents["database.pgdump"] = contents.pop("database.sqlite3")

    rewrite(database, other, change_manifest(as_postgresql))

    with pytest.raises(
        CommandError, match="holds a postgresql database, but this site uses sqlite"
    ):
        run("restore", str(other), "--yes")


def test_a_restore_refuses_to_replace_a_database_that_holds_data_unless_told_yes(
    var_dir, conversation, employee, tmp_path
):
    _, database, _ = make_backup(tmp_path)
    services.rename(actor=employee, conversation=conversation, title="Renamed after the backup")

    with pytest.raises(CommandError, match=r"already holds data \(users: 1, conversations: 1"):
        run("restore", str(database))

    assert Conversation.objects.get().title == "Renamed after the backup"
    refusal = AuditEvent.objects.order_by("-sequence").first()
    assert (refusal.action, refusal.outcome) == ("backup.restored", "failure")


def test_a_restore_refuses_to_overwrite_a_key_file_that_differs_and_names_it(
    var_dir, conversation, employee, tmp_path, settings
):
    _, database, key_archive = make_backup(tmp_path)
    secret_key_file = keys_dir(var_dir) / SECRET_KEY_FILE
    secret_key_file.write_text("another-secret-key-of-this-installation-" + "x" * 30 + "\n")
    original = members(key_archive)[f"keys/{SECRET_KEY_FILE}"]
    services.rename(actor=employee, conversation=conversation, title="Renamed after the backup")

    with pytest.raises(CommandError) as refused:
        run("restore", str(database), "--keys", str(key_archive))
    assert str(secret_key_file) in str(refused.value)
    assert "Run again with --yes" in str(refused.value)

    output = run("restore", str(database), "--keys", str(key_archive), "--yes")

    assert secret_key_file.read_bytes() == original
    assert mode(secret_key_file) == 0o600
    kept = list(keys_dir(var_dir).glob(f"{SECRET_KEY_FILE}.replaced-*"))
    assert [path.read_text() for path in kept] == [
        "another-secret-key-of-this-installation-" + "x" * 30 + "\n"
    ]
    assert f"The {SECRET_KEY_FILE} it replaced is kept as {kept[0].name}" in output
    assert Conversation.objects.get().title == QUESTION


def test_a_restore_refuses_a_keyring_that_cannot_read_the_archive(
    var_dir, conversation, tmp_path, settings
):
    _, database, key_archive = make_backup(tmp_path)
    new_key = Fernet.generate_key().decode()
    (keys_dir(var_dir) / CHAT_KEYRING_FILE).write_text(new_key + "\n")
    settings.CHAT_KEYRING = [new_key]

    with pytest.raises(
        CommandError, match="holds none of the keys that encrypted the conversations"
    ):
        run("restore", str(database), "--yes")

    assert Conversation.objects.count() == 1
    # With the key archive made alongside, the same restore goes through.
    run("restore", str(database), "--keys", str(key_archive), "--yes")
    assert Conversation.objects.get().title == QUESTION


def test_key_files_come_back_without_django_on_a_machine_that_has_none(
    var_dir, conversation, tmp_path, capsys
):
    _, _, key_archive = make_backup(tmp_path)
    fresh = tmp_path / "fresh-var"

    assert restore_keys_main(["restore-keys", str(key_archive), "--var-dir", str(fresh)]) == 0

    for name in (SECRET_KEY_FILE, CHAT_KEYRING_FILE, AUDIT_HMAC_KEY_FILE):
        assert (keys_dir(fresh) / name).read_bytes() == (keys_dir(var_dir) / name).read_bytes()
        assert mode(keys_dir(fresh) / name) == 0o600
    assert mode(keys_dir(fresh)) == 0o700
    (keys_dir(fresh) / CHAT_KEYRING_FILE).write_text(Fernet.generate_key().decode() + "\n")
    assert restore_keys_main(["restore-keys", str(key_archive), "--var-dir", str(fresh)]) == 1
    assert "chat_keyring already holds other keys" in capsys.readouterr().err


# --- Choosing pg_dump and pg_restore ------------------------------------------------------


def fake_tool(directory, name: str, major: int):
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text(f'#!/bin/sh\necho "{name} (PostgreSQL) {major}.3 (Debian)"\n')
    tool.chmod(0o755)
    return tool


def test_the_tool_of_the_servers_own_version_comes_before_the_one_on_path(tmp_path, monkeypatch):
    own = fake_tool(tmp_path / "lib/15/bin", "pg_dump", 15)
    fake_tool(tmp_path / "path", "pg_dump", 17)
    monkeypatch.setenv("PATH", str(tmp_path / "path"))

    assert postgres_tool("pg_dump", 15, lib_root=tmp_path / "lib") == (own, 15)
    # A server the side-by-side tools do not cover: PATH's newer one will do.
    assert postgres_tool("pg_dump", 16, lib_root=tmp_path / "lib")[1] == 17


def test_a_tool_older_than_the_server_or_none_at_all_is_refused_with_what_to_install(
    tmp_path, monkeypatch
):
    fake_tool(tmp_path / "path", "pg_restore", 13)
    monkeypatch.setenv("PATH", str(tmp_path / "path"))

    with pytest.raises(BackupError, match=r"is version 13.*postgresql-client-15"):
        postgres_tool("pg_restore", 15, lib_root=tmp_path / "lib")
    with pytest.raises(BackupError, match="version 16 or later"):
        postgres_tool("pg_restore", 13, at_least=16, lib_root=tmp_path / "lib")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BackupError, match=r"pg_dump was not found in .*lib/15/bin or on PATH"):
        postgres_tool("pg_dump", 15, lib_root=tmp_path / "lib")
