"""Documents in the production profile: PostgreSQL, Redis, daphne over TLS, a separate
inference worker and a separate document worker; HTTP upload, socket question, deletion."""

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid

import psycopg
import pytest

from tests.documents import files
from tests.support.browserless import SignedInClient
from tests.support.production import connect, start_worker, wait_until_ready
from tests.support.server import REPO, free_port, manage, served_site
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system

PASSWORD = "production passphrase 77"
FACT = "The archive room key is kept at reception desk seven."


@pytest.fixture(scope="module")
def production(tmp_path_factory, postgres_server_url, redis_server_url):
    var_dir = tmp_path_factory.mktemp("var")
    with throwaway_database(postgres_server_url) as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server_url}
        with served_site(var_dir, free_port(), **env) as site:
            manage("createuser", "petra", "--password-stdin", env=site.env, stdin=PASSWORD)
            manage("createuser", "quentin", "--password-stdin", env=site.env, stdin=PASSWORD)
            inference = start_worker(site, "worker-1")
            with (var_dir / "indexer.log").open("w") as log:
                indexer = subprocess.Popen(
                    [sys.executable, "manage.py", "index_documents", "--name", "indexer-1"],
                    cwd=REPO,
                    env=site.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until_ready(site)
                yield site
            finally:
                indexer.terminate()
                indexer.wait(timeout=30)
                inference.stop()


def _call(client: SignedInClient, method: str, path: str, body=None, content_type=None):
    page = client.get("/")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    headers = {"X-CSRFToken": token, "Origin": client.base, "Referer": client.base + "/"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(  # noqa: S310 - the site's own https://localhost address
        client.base + path, data=body, method=method, headers=headers
    )
    try:
        with client.opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _upload(client, name: str, data: bytes):
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return _call(
        client,
        "POST",
        "/documents/api/documents",
        body,
        f"multipart/form-data; boundary={boundary}",
    )


async def _ask(site, cookie, document_id):
    async with connect(site, cookie) as socket:
        await socket.send(
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": None,
                    "content": "Where is the archive room key kept?",
                    "client_id": "docs-1",
                    "params": {"max_new_tokens": 16},
                    "sources": {"documents": [document_id]},
                }
            )
        )
        frames = []
        while not frames or frames[-1]["type"] not in ("chat.done", "error"):
            frames.append(json.loads(await asyncio.wait_for(socket.recv(), 90)))
        return frames


def test_a_pdf_is_indexed_by_the_worker_and_cited_only_for_its_owner(production):
    petra = SignedInClient(production).sign_in("petra", PASSWORD)
    quentin = SignedInClient(production).sign_in("quentin", PASSWORD)

    status, document = _upload(petra, "rooms.pdf", files.pdf(["Floor plan.", FACT]))
    assert status == 201, document
    deadline = time.monotonic() + 180
    while document["status"] != "ready":
        assert document["status"] in ("queued", "indexing"), document
        assert time.monotonic() < deadline, "the document worker never finished"
        time.sleep(0.5)
        document = _call(petra, "GET", f"/documents/api/documents/{document['id']}")[1]

    frames = asyncio.run(_ask(production, petra.cookie_header(), document["id"]))
    citation = frames[-1]["citations"][0]
    assert (citation["document"], citation["page"]) == (document["id"], 2)
    assert "reception desk seven" in citation["quote"]

    assert _call(quentin, "GET", f"/documents/api/documents/{document['id']}")[0] == 404
    refused = asyncio.run(_ask(production, quentin.cookie_header(), document["id"]))
    assert refused[-1]["type"] == "error" and refused[-1]["code"] == "source_not_found"

    assert _call(petra, "DELETE", f"/documents/api/documents/{document['id']}")[0] == 200
    with psycopg.connect(production.env["DATABASE_URL"]) as db:
        left = db.execute(
            "SELECT (SELECT count(*) FROM documents_document),"
            " (SELECT count(*) FROM documents_chunk),"
            " (SELECT count(*) FROM documents_documentfile)"
        ).fetchone()
    assert left == (0, 0, 0)
