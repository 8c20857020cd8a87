"""Many processes appending at once leave one chain that verifies, on SQLite and PostgreSQL."""

import sqlite3
import subprocess
import sys

import psycopg
import pytest

from tests.support.server import REPO, site_environment
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system

WRITERS = 8
EVENTS_EACH = 200

APPEND_EVENTS = """
import sys
import django
django.setup()
from audit.log import record
writer = int(sys.argv[1])
for index in range(int(sys.argv[2])):
    record("message.sent", writer=writer, index=index)
"""


def _prepared(env):
    subprocess.run([sys.executable, "-m", "core.keys"], cwd=REPO, env=env, check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _append_concurrently(env):
    env = {**env, "DJANGO_SETTINGS_MODULE": "project.settings"}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", APPEND_EVENTS, str(n), str(EVENTS_EACH)],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=300)
        assert writer.returncode == 0, errors


def _audit_verify(env):
    return subprocess.run(
        [sys.executable, "manage.py", "audit_verify"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def sqlite_env(tmp_path):
    return _prepared(site_environment(tmp_path))


@pytest.fixture
def postgres_env(tmp_path, postgres_server_url):
    with throwaway_database(postgres_server_url) as url:
        yield _prepared(site_environment(tmp_path, DATABASE_URL=url))


def _check_one_chain_then_tamper(env, tamper):
    _append_concurrently(env)

    intact = _audit_verify(env)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"Checked {WRITERS * EVENTS_EACH} events: the audit chain is intact" in intact.stdout

    tamper("UPDATE audit_auditevent SET source_ip = '10.6.6.6' WHERE sequence = 777")
    broken = _audit_verify(env)
    assert broken.returncode == 1
    assert "event #777 (message.sent" in broken.stderr
    assert "altered" in broken.stderr


def test_concurrent_writers_on_sqlite_form_one_verifiable_chain(sqlite_env, tmp_path):
    def tamper(sql):
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            db.execute(sql)

    _check_one_chain_then_tamper(sqlite_env, tamper)


def test_concurrent_writers_on_postgresql_form_one_verifiable_chain(postgres_env):
    def tamper(sql):
        with psycopg.connect(postgres_env["DATABASE_URL"], autocommit=True) as db:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(sql)
            # A database superuser can switch the triggers off; the key still catches it.
            db.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
            db.execute(sql)

    _check_one_chain_then_tamper(postgres_env, tamper)
