"""Documents with real processes: a separate indexing worker killed mid-document, and a
deletion that leaves no trace of the document in the database files or anywhere in var/."""

import contextlib
import json
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


def _index_worker(env, name: str, **output) -> subprocess.Popen:
    """A long-running `index_documents` worker in a session of its own (to kill it whole)."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "index_documents", "--name", name],
        cwd=REPO,
        env=env,
        start_new_session=True,
        **output,
    )


def _wait_until(condition, seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def test_a_worker_killed_mid_document_is_taken_over_after_its_lease(site_env):
    # About 250 passages: several seconds of embedding, long enough to be killed within.
    paragraphs = "'\\n\\n'.join(f'Paragraph {n} of the long report on quarterly figures.' * 12 for n in range(250))"
    document_id = _upload(site_env, f"({paragraphs}).encode()", "long.txt")
    worker = _index_worker(site_env, "doomed", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until(
            lambda: _status(site_env, document_id).startswith("indexing"),
            60,
            "the worker never started indexing",
        )
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


def _chunks_by_model(env, document_id) -> dict[str, int]:
    database = Path(env["VAR_DIR"]) / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(database, timeout=20)) as connection:
        rows = connection.execute(
            "select embedding_model, count(*) from documents_chunk where document_id = ? "
            "group by embedding_model",
            [document_id.replace("-", "")],
        ).fetchall()
    return dict(rows)


ASK = (
    "import json; from django.contrib.auth.models import User; "
    "from chat.retrieval import Sources; from documents.models import Document; "
    "from documents.search import DocumentSearch; "
    "d = Document.objects.get(pk={id!r}); "
    "c = DocumentSearch().retrieve(User.objects.get(username='alice'), "
    "'What is the code name of the spring campaign?', Sources(documents=({id!r},)), "
    "max_chars=3000); "
    "print(json.dumps([d.status, d.embedding_model, c[0]['quote'] if c else None]))"
)


def test_a_worker_stopped_mid_reindexing_leaves_the_old_index_answering(site_env, tmp_path_factory):
    from tests.support.embedding_models import make_retuned_model

    # 300 one-line pages: 300 passages, three batches of the new model's index.
    pages = "[f'Page {n} of the visitor guide.' for n in range(299)] + [" + repr(MARKER) + "]"
    document_id = _upload(
        site_env, f"__import__('tests.documents.files').documents.files.pdf({pages})", "g.pdf"
    )
    manage("index_documents", "--once", env=site_env, timeout=300)
    (identity_a,) = _chunks_by_model(site_env, document_id)
    model_b = make_retuned_model(tmp_path_factory.mktemp("models") / "minilm-retuned")
    with_b = {**site_env, "EMBEDDING_MODEL_DIR": str(model_b)}

    worker = _index_worker(
        with_b, "stopping", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_until(
            lambda: len(_chunks_by_model(site_env, document_id)) >= 2,
            120,
            "the worker never wrote a batch",
        )
        # As systemd or Kubernetes stop it: it finishes its batch and hands the document back.
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert "Document worker stopping stopped." in output
    written = _chunks_by_model(site_env, document_id)
    assert written[identity_a] == 300
    assert 0 < sum(n for model, n in written.items() if model != identity_a) < 300
    status, model, quote = json.loads(_shell(with_b, ASK.format(id=document_id)))
    assert (status, model) == ("ready", identity_a)
    assert MARKER in quote

    # The next worker takes it up at once (no lease to wait for) and finishes it.
    manage("index_documents", "--once", env=with_b, timeout=300)

    (identity_b,) = _chunks_by_model(site_env, document_id)
    assert identity_b != identity_a and _chunks_by_model(site_env, document_id)[identity_b] == 300
    status, model, quote = json.loads(_shell(with_b, ASK.format(id=document_id)))
    assert (status, model) == ("ready", identity_b)
    assert MARKER in quote
