"""Backup and restore as an operator runs them after a disaster: real `manage.py` processes,
a PostgreSQL database that is dropped, a state directory whose keys are gone."""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.support.server import REPO, manage, site_environment
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system

CONVERSATIONS = {
    "alice": [
        ["The merger with Globex closes on 14 March", "Noted: Globex, 14 March."],
        ["Grüße aus Köln — naïve café ☕", "Danke! 🙂"],
    ],
    "bob": [["Draft the layoff memo for team B", "Here is a draft of the memo for team B."]],
}

CREATE = """
import json, sys
from accounts.services import create_user
from chat import services
for username, turns in json.loads(sys.stdin.read()).items():
    user = create_user(username=username, password="correct horse battery staple 42")
    for question, answer in turns:
        turn = services.start_turn(
            actor=user, conversation_id=None, content=question, model_name="test-model"
        )
        services.finish_answer(message_id=turn.answer.pk, content=answer, finish_reason="stop")
"""

# Every user's conversations as the chat shows them: decrypted with the keyring in use.
READ = """
import json
from django.contrib.auth import get_user_model
from chat import services
print(json.dumps({
    user.username: [
        [m.content for m in conversation.messages.order_by("created_at")]
        for conversation in services.conversations_of(user).order_by("created_at")
    ]
    for user in get_user_model().objects.order_by("username")
}))
"""


def stored_conversations(env) -> dict:
    return json.loads(manage("shell", "--no-imports", "-c", READ, env=env).splitlines()[-1])


def prepare(env) -> None:
    subprocess.run(
        [sys.executable, "-m", "core.keys"], cwd=REPO, env=env, check=True, capture_output=True
    )
    manage("migrate", "--noinput", env=env)
    manage("shell", "--no-imports", "-c", CREATE, env=env, stdin=json.dumps(CONVERSATIONS))


def back_up(env, tmp_path: Path) -> tuple[Path, Path]:
    manage(
        "backup",
        "--output",
        str(tmp_path / "database-backups"),
        "--keys-output",
        str(tmp_path / "key-backups"),
        env=env,
    )
    (database,) = (tmp_path / "database-backups").glob("chat-db-*.tar")
    (keys,) = (tmp_path / "key-backups").glob("chat-keys-*.tar")
    return database, keys


def manifest_of(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        return json.loads(tar.extractfile("manifest.json").read())


def failing_manage(*args: str, env) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    return result.stderr


def restore_keys(archive: Path, var_dir: Path, env) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "project.backup", "restore-keys", str(archive)],
        cwd=REPO,
        env={**env, "VAR_DIR": str(var_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def expected_conversations() -> dict:
    return {
        user: [[question, answer] for question, answer in turns]
        for user, turns in CONVERSATIONS.items()
    }


def test_a_postgresql_site_comes_back_after_losing_its_database_and_its_keys(
    tmp_path, postgres_server_url
):
    with throwaway_database(postgres_server_url) as database_url:
        var_dir = tmp_path / "var"
        env = site_environment(var_dir, DATABASE_URL=database_url)
        prepare(env)
        database, keys = back_up(env, tmp_path)
        assert manifest_of(database)["database"]["vendor"] == "postgresql"

        name = urlsplit(database_url).path.lstrip("/")
        with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        shutil.rmtree(var_dir / "keys")

        # Django cannot start without keys: they come back first, then the database.
        restored_keys = restore_keys(keys, var_dir, env)
        output = manage("restore", str(database), "--keys", str(keys), env=env)

        assert "restored audit_hmac_key, chat_keyring, django_secret_key" in restored_keys
        assert "Restored the database with pg_restore" in output
        assert "Keyring check: the chat keyring opens the stored data" in output
        assert "Restore complete" in output
        assert stored_conversations(env) == expected_conversations()
        assert "the audit chain is intact" in manage("audit_verify", env=env)
        refused = failing_manage("restore", str(database), env=env)
        assert "The database already holds data (users: 2, conversations: 3" in refused
        with psycopg.connect(database_url, connect_timeout=5):
            refused = failing_manage("restore", str(database), "--yes", env=env)
        assert "1 other connection is open to the database" in refused


def test_an_embedded_site_comes_back_onto_a_fresh_installation_with_other_keys(tmp_path):
    var_dir = tmp_path / "var"
    env = site_environment(var_dir)
    prepare(env)
    database, keys = back_up(env, tmp_path)
    assert manifest_of(database)["database"]["vendor"] == "sqlite"

    for path in var_dir.glob("db.sqlite3*"):
        path.unlink()
    shutil.rmtree(var_dir / "keys")
    # As `make run` on a new machine would: new keys, which cannot read the old data.
    prepare_keys = subprocess.run(
        [sys.executable, "-m", "core.keys"], cwd=REPO, env=env, check=True, capture_output=True
    )
    assert b"created" in prepare_keys.stdout

    refused = failing_manage("restore", str(database), "--keys", str(keys), env=env)
    assert str(var_dir / "keys" / "chat_keyring") in refused
    assert "Run again with --yes" in refused

    output = manage("restore", str(database), "--keys", str(keys), "--yes", env=env)

    assert "The chat_keyring it replaced is kept as chat_keyring.replaced-" in output
    assert "Restore complete" in output
    assert stored_conversations(env) == expected_conversations()
    assert "the audit chain is intact" in manage("audit_verify", env=env)


def test_a_user_erased_after_a_backup_stays_erased_when_that_backup_is_restored(
    tmp_path, postgres_server_url
):
    with throwaway_database(postgres_server_url) as database_url:
        var_dir = tmp_path / "var"
        env = site_environment(var_dir, DATABASE_URL=database_url)
        prepare(env)
        database, _keys = back_up(env, tmp_path)

        erased = manage("erase_user", "alice", "--reason", "erasure request 2026-118", env=env)
        assert (
            "Erased alice: 2 conversations, 4 messages, 0 documents; destroyed 2 data keys"
            in erased
        )

        # The database is lost; the old backup comes back into an empty one, with the keys
        # (and the key store) of today.
        name = urlsplit(database_url).path.lstrip("/")
        with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        output = manage("restore", str(database), env=env)

        assert "Restore complete" in output
        assert "Erasure check: 2 conversations of 1 users show as erased" in output
        restored = stored_conversations(env)
        assert restored["alice"] == [["(erased)", "(erased)"], ["(erased)", "(erased)"]]
        assert restored["bob"] == expected_conversations()["bob"]
        assert "Globex" not in json.dumps(restored)
        assert "the audit chain is intact" in manage("audit_verify", env=env)

        # The key store noted the erasure: the restored rows and account go too.
        reapplied = manage("reapply_erasures", env=env)
        assert "Erasures re-applied: 1 users." in reapplied
        restored = stored_conversations(env)
        assert "alice" not in restored
        assert [turns for user, turns in restored.items() if user.startswith("erased-")] == [[]]
        assert restored["bob"] == expected_conversations()["bob"]
        assert "the audit chain is intact" in manage("audit_verify", env=env)


# A user with an indexed document; prints how many passages it was cut into.
CREATE_DOCUMENT = """
import sys
from accounts.services import create_user
from documents import indexing, services
user = create_user(username="carol", password="correct horse battery staple 42")
document = services.upload(actor=user, name="globex merger.txt", data=sys.stdin.read().encode())
indexing.run_pending()
print(document.chunks.count())
"""

# The document as anything on the site would read it: its name, file, passages and vectors,
# and what a search over it finds.
READ_DOCUMENT = """
import json
from django.contrib.auth import get_user_model
from chat.retrieval import Sources
from core.datakeys import Erased
from documents.models import Chunk, Document, DocumentFile
from documents.search import DocumentSearch
document = Document.objects.get()
values = [document.name, DocumentFile.objects.get(document=document).data]
for chunk in Chunk.objects.filter(document=document):
    values += [chunk.passage, chunk.vector]
found = DocumentSearch().retrieve(
    document.owner, "When does the Globex merger close?",
    Sources(documents=(str(document.pk),)), max_chars=3000,
)
print(json.dumps({
    "values": len(values),
    "erased": sum(isinstance(value, Erased) for value in values),
    "text": " ".join(map(str, values)),
    "found": found,
}))
"""

MERGER = "The merger with Globex closes on 14 March. The price is 41 million euros."


def test_a_document_erased_after_a_backup_stays_unreadable_when_that_backup_is_restored(
    tmp_path,
):
    var_dir = tmp_path / "var"
    env = site_environment(var_dir)
    prepare(env)
    passages = int(
        manage("shell", "--no-imports", "-c", CREATE_DOCUMENT, env=env, stdin=MERGER).split()[-1]
    )
    assert passages >= 1
    database, _keys = back_up(env, tmp_path)

    erased = manage("erase_user", "carol", "--reason", "erasure request 2026-131", env=env)
    assert "1 documents" in erased

    # The old backup comes back over today's database, with today's key store.
    output = manage("restore", str(database), "--yes", env=env)

    assert "Restore complete" in output
    assert (
        f"Erasure check: 1 documents, 1 document files, {passages} passages and {passages} "
        "vectors of 1 users show as erased" in output
    )
    restored = json.loads(manage("shell", "--no-imports", "-c", READ_DOCUMENT, env=env))
    assert restored["values"] == 2 + 2 * passages
    assert restored["erased"] == restored["values"]
    assert "Globex" not in restored["text"] and "41 million" not in restored["text"]
    assert restored["found"] == []
    assert "the audit chain is intact" in manage("audit_verify", env=env)
