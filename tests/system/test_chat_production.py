"""The production profile with real processes: daphne over TLS, separate inference workers,
Redis and PostgreSQL; a websocket client streams answers from the real model."""

import asyncio
import json
import time

import psycopg
import pytest

from tests.support.browserless import SignedInClient
from tests.support.production import ask, connect, start_worker, wait_until_ready
from tests.support.server import free_port, manage, served_site
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system

PASSWORD = "production passphrase 99"


@pytest.fixture(scope="module")
def production(tmp_path_factory, postgres_server_url, redis_server_url):
    var_dir = tmp_path_factory.mktemp("var")
    with throwaway_database(postgres_server_url) as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server_url}
        with served_site(var_dir, free_port(), **env) as site:
            manage("createuser", "paula", "--password-stdin", env=site.env, stdin=PASSWORD)
            manage("createuser", "quinn", "--password-stdin", env=site.env, stdin=PASSWORD)
            site.workers = [start_worker(site, "worker-1")]
            try:
                yield site
            finally:
                for worker in site.workers:
                    worker.stop()


@pytest.fixture(scope="module")
def paula(production):
    """Signed in once (enrolling her authenticator), shared by the tests."""
    return SignedInClient(production).sign_in("paula", PASSWORD)


def stored_answer(site, message_id):
    with psycopg.connect(site.env["DATABASE_URL"]) as db:
        row = db.execute(
            "SELECT status, content FROM chat_message WHERE id = %s", [message_id]
        ).fetchone()
    return row


def test_an_answer_streams_end_to_end_through_a_separate_worker(production, paula):
    frames, text = asyncio.run(
        ask(production, paula.cookie_header(), "What is the capital of France?")
    )

    assert frames[0]["type"] == "chat.started"
    assert frames[-1] == {
        "type": "chat.done",
        "message": frames[0]["message"],
        "finish_reason": frames[-1]["finish_reason"],
        "usage": frames[-1]["usage"],
        "citations": [],
        "time_to_first_token_ms": frames[-1]["time_to_first_token_ms"],
        "duration_ms": frames[-1]["duration_ms"],
    }
    assert 0 < frames[-1]["time_to_first_token_ms"] <= frames[-1]["duration_ms"]
    assert frames[-1]["finish_reason"] in ("stop", "length")
    assert "Paris" in text
    status, stored = stored_answer(production, frames[0]["message"])
    assert status == "complete"
    # Stored sealed under the conversation's data key (which the worker process found in the
    # shared key store): a Fernet token, not the text.
    assert "Paris" not in stored
    assert stored.startswith("dk1:") and ":conversation-" in stored


def test_two_users_asking_at_once_both_get_answers(production, paula):
    quinn = SignedInClient(production).sign_in("quinn", PASSWORD)

    async def both():
        return await asyncio.gather(
            ask(production, paula.cookie_header(), "What is the capital of France?"),
            ask(production, quinn.cookie_header(), "What is the capital of Italy?"),
        )

    for frames, text in asyncio.run(both()):
        assert frames[-1]["type"] == "chat.done", frames
        assert frames[-1]["finish_reason"] in ("stop", "length"), frames
        assert text


def test_health_lists_the_worker_and_its_model(production):
    body = wait_until_ready(production)

    (worker,) = [w for w in body["checks"]["inference"]["workers"] if w["state"] == "ready"]
    assert worker["model"] == "SmolLM2-135M-Instruct"


def test_killing_the_worker_mid_answer_ends_with_an_error_and_keeps_the_partial_answer(
    production, paula
):
    client = paula
    killed = {}

    async def kill_after_some_text(frames):
        deltas = [f for f in frames if f["type"] == "chat.delta"]
        if len(deltas) >= 3 and not killed:
            production.workers[0].kill()
            killed["at"] = time.monotonic()

    frames, text = asyncio.run(
        ask(
            production,
            client.cookie_header(),
            "Write a long story about a lighthouse keeper.",
            max_new_tokens=400,
            until=kill_after_some_text,
        )
    )

    assert killed, "the answer finished before the worker could be killed"
    assert frames[-1]["type"] == "chat.done"
    assert frames[-1]["finish_reason"] == "error"
    status, _ = stored_answer(production, frames[0]["message"])
    assert status == "error"
    detail = client.get(f"/chat/api/conversations/{frames[0]['conversation']}")
    answer = json.loads(detail)["messages"][-1]
    assert answer["status"] == "error"
    assert answer["content"] == text
    assert text

    # A new worker takes over the next question.
    production.workers.append(start_worker(production, "worker-2"))
    frames, text = asyncio.run(
        ask(
            production,
            client.cookie_header(),
            "What is the capital of France?",
            conversation=frames[0]["conversation"],
        )
    )
    assert frames[-1]["finish_reason"] in ("stop", "length")
    assert text


def test_health_stays_green_while_users_are_connected(production, paula):
    async def check_with_a_socket_open():
        async with connect(production, paula.cookie_header()):
            return await asyncio.to_thread(production.json, "/healthz")

    status, body = asyncio.run(check_with_a_socket_open())

    assert status == 200, body["checks"]
