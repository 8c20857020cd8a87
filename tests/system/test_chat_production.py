"""The production profile with real processes: daphne over TLS, separate inference workers,
Redis and PostgreSQL; a websocket client streams answers from the real model."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import websockets

from tests.support.browserless import SignedInClient
from tests.support.server import REPO, free_port, manage, served_site, site_environment
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system

PASSWORD = "production passphrase 99"


class Worker:
    def __init__(self, env, log_path):
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "inference_worker"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until_ready(site, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = site.json("/healthz")
        if status == 200:
            return body
        time.sleep(0.5)
    raise AssertionError(f"no ready worker within {timeout} s: {body}")


@pytest.fixture(scope="module")
def production(tmp_path_factory, postgres_server_url, redis_server_url):
    var_dir = tmp_path_factory.mktemp("var")
    with throwaway_database(postgres_server_url) as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server_url}
        with served_site(var_dir, free_port(), **env) as site:
            site.env = site_environment(var_dir, **env)
            manage("createuser", "paula", "--password-stdin", env=site.env, stdin=PASSWORD)
            manage("createuser", "quinn", "--password-stdin", env=site.env, stdin=PASSWORD)
            site.workers = [Worker(site.env, var_dir / "worker-1.log")]
            try:
                wait_until_ready(site)
                yield site
            finally:
                for worker in site.workers:
                    worker.stop()


async def ask(site, cookie, content, *, conversation=None, max_new_tokens=24, until=None):
    """Send one question; return (frames, text). ``until(frames)`` may act mid-stream."""
    async with websockets.connect(
        f"wss://localhost:{site.port}/ws/chat/",
        ssl=site.tls_context(),
        origin=f"https://localhost:{site.port}",
        additional_headers={"Cookie": cookie},
        open_timeout=20,
    ) as socket:
        await socket.send(
            json.dumps(
                {
                    "type": "chat.send",
                    "conversation": conversation,
                    "content": content,
                    "client_id": "sys-1",
                    "params": {"max_new_tokens": max_new_tokens},
                }
            )
        )
        frames = []
        while not frames or frames[-1]["type"] not in ("chat.done", "error"):
            frames.append(json.loads(await asyncio.wait_for(socket.recv(), 60)))
            if until is not None:
                await until(frames)
    text = "".join(f["text"] for f in frames if f["type"] == "chat.delta")
    return frames, text


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
    }
    assert frames[-1]["finish_reason"] in ("stop", "length")
    assert "Paris" in text
    status, stored = stored_answer(production, frames[0]["message"])
    assert status == "complete"
    # Stored encrypted: the raw column is a Fernet token, not the text.
    assert "Paris" not in stored
    assert stored.startswith("gAAAA")


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
    production.workers.append(Worker(production.env, production.var_dir / "worker-2.log"))
    wait_until_ready(production)
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
