"""Documents with real processes: a separate indexing worker killed mid-document, and a
deletion that leaves no trace of the document in the database files or anywhere in var/."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.server import REPO, manage, prepare_state, site_environment

pytestmark = pytest.mark.system

MARKER = "Zebrafinch-7741 is the code name of the spring campaign."


def _shell(env, code: str) -> str:
    # The last line: Django's shell may first say what it imported.
    return manage("shell", "-c", code, env=env).strip().splitlines()[-1]


def _files_holding(var_dir: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in var_dir.rglob("*"):
        if path.is_file() and not path.name.endswith(".log"):
            data = path.read_bytes()
            found += [f"{path.name}: {needle[:30]!r}" for needle in needles if needle in data]
    return found


@pytest.fixture(scope="module")
def site_env(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("documents-site")
    env = site_environment(var_dir, DOCUMENTS_LEASE_SECONDS="5")
    prepare_state(env)
    _shell(env, "from tests.support.personas import make_employee; make_employee('alice')")
    return env


def _upload(env, data_expression: str, name: str) -> str:
    return _shell(
        env,
        "from django.contrib.auth.models import User; from documents import services; "
        f"print(services.upload(actor=User.objects.get(username='alice'), name={name!r}, "
        f"data={data_expression}).pk)",
    )


def _status(env, document_id) -> str:
    """Read straight from the SQLite file (states and counts are not encrypted)."""
    database = Path(env["VAR_DIR"]) / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(database, timeout=20)) as connection:
        status, attempts = connection.execute(
            "select status, attempts from documents_document where id = ?",
            [document_id.replace("-", "")],
        ).fetchone()
    return f"{status} {attempts}"


def test_a_worker_killed_mid_document_is_taken_over_after_its_lease(site_env):
    # About 250 passages: several seconds of embedding, long enough to be killed within.
    paragraphs = "'\\n\\n'.join(f'Paragraph {n} of the long report on quarterly figures.' * 12 for n in range(250))"
    document_id = _upload(site_env, f"({paragraphs}).encode()", "long.txt")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "index_documents", "--name", "doomed"],
        cwd=REPO,
        env=site_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _status(site_env, document_id).startswith("indexing"):
            assert time.monotonic() < deadline, "the worker never started indexing"
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert _status(site_env, document_id) == "indexing 1"

    time.sleep(5)
    manage("index_documents", "--once", env=site_env, timeout=300)

    assert _status(site_env, document_id) == "ready 2"


def test_deleting_a_document_leaves_no_trace_in_var(site_env):
    var_dir = Path(site_env["VAR_DIR"])
    document_id = _upload(site_env, f"{MARKER!r}.encode()", "campaign.txt")
    manage("index_documents", "--once", env=site_env)
    # The stored ciphertext itself, read past the ORM's decryption (ids bound as parameters).
    stored = _shell(
        site_env,
        "from django.db import connection; c = connection.cursor(); "  # noqa: S608
        f"c.execute('select passage, vector from documents_chunk where document_id = %s', "
        f"[{document_id!r}.replace('-', '')]); row = c.fetchone(); "
        f"c.execute('select data from documents_documentfile where document_id = %s', "
        f"[{document_id!r}.replace('-', '')]); print(row[0][:60], row[1][:60], c.fetchone()[0][-60:])",
    ).split()
    assert len(stored) == 3
    needles = [MARKER.encode(), *(token.encode() for token in stored)]
    assert _files_holding(var_dir, needles[:1]) == []  # encrypted at rest, even before
    assert len(_files_holding(var_dir, needles[1:])) >= 1

    _shell(
        site_env,
        "from django.contrib.auth.models import User; from documents import services; "
        f"services.delete(actor=User.objects.get(username='alice'), "
        f"document=services.document_for(User.objects.get(username='alice'), {document_id!r}))",
    )

    assert _files_holding(var_dir, needles) == []
