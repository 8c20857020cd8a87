"""Faults with real processes: PostgreSQL stopping, Redis restarting, a full queue. Each test
runs its own throwaway servers (tests/support/clusters.py); the shared ones are never
touched."""

import asyncio
import json
import time

import pytest
import websockets

from tests.support.browserless import SignedInClient
from tests.support.clusters import ThrowawayPostgres, ThrowawayRedis
from tests.support.production import ask, ask_on, connect, start_worker, wait_until_ready
from tests.support.server import free_port, manage, served_site
from tests.support.services import throwaway_database

pytestmark = pytest.mark.system

PASSWORD = "fault passphrase 77"
# An error frame must come quickly, not after a timeout the user sits through.
PROMPT_ERROR_SECONDS = 10


@pytest.fixture
def own_postgres():
    server = ThrowawayPostgres()
    server.create()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def own_redis(tmp_path):
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


class Production:
    """A served site with one separate worker, and signed-in users."""

    def __init__(self, var_dir, env):
        self.var_dir = var_dir
        self.env_overrides = env

    def __enter__(self):
        self._served = served_site(self.var_dir, free_port(), **self.env_overrides)
        self.site = self._served.__enter__()
        try:
            self.worker = start_worker(self.site, "worker")
        except BaseException:
            self._served.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.worker.stop()
        self._served.__exit__(*exc)

    def sign_in(self, username):
        manage("createuser", username, "--password-stdin", env=self.site.env, stdin=PASSWORD)
        return SignedInClient(self.site).sign_in(username, PASSWORD)

    def still_running(self) -> bool:
        return self.site.process.poll() is None and self.worker.process.poll() is None

    def logs(self) -> str:
        return self.site.log()[-4000:] + "\n--- worker\n" + self.worker.log()[-4000:]


def answered(frames) -> bool:
    return frames[-1]["type"] == "chat.done" and frames[-1]["finish_reason"] in ("stop", "length")


def assistant_messages(client, conversation):
    detail = json.loads(client.get(f"/chat/api/conversations/{conversation}"))
    return [m for m in detail["messages"] if m["role"] == "assistant"]


def wait_until_written(client, conversation, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(m["status"] != "streaming" for m in assistant_messages(client, conversation)):
            return
        time.sleep(1)
    raise AssertionError(f"an answer was still being written after {timeout} s")


def test_a_database_outage_gives_clear_errors_and_503_then_everything_recovers(
    tmp_path, own_postgres, redis_server_url
):
    env = {"DATABASE_URL": own_postgres.url, "REDIS_URL": redis_server_url}
    with Production(tmp_path / "var", env) as production:
        site = production.site
        olga = production.sign_in("olga")
        cookie = olga.cookie_header()

        async def through_the_outage():
            async with connect(site, cookie) as socket:
                frames, _ = await ask_on(socket, "What is the capital of France?")
                assert answered(frames), frames
                conversation = frames[0]["conversation"]

                own_postgres.stop()
                status, body = await asyncio.to_thread(site.json, "/healthz")
                assert status == 503, body
                assert body["checks"]["database"]["ok"] is False
                assert body["checks"]["channel_layer"]["ok"] is True, body["checks"]
                status, headers, page = await asyncio.to_thread(
                    site.request, "/", headers={"Cookie": cookie}
                )
                assert status == 503
                assert headers["retry-after"] == "30"
                assert b"temporarily unavailable" in page

                asked = time.monotonic()
                frames, _ = await ask_on(socket, "Are you there?", conversation=conversation)
                assert time.monotonic() - asked < PROMPT_ERROR_SECONDS
                assert [f["type"] for f in frames] == ["error"]
                assert frames[0]["code"] == "unavailable"
                assert "try again in a minute" in frames[0]["detail"]

                own_postgres.start()
                await asyncio.to_thread(wait_until_ready, site, 60)
                # The same socket carries on, in the same conversation.
                frames, _ = await ask_on(
                    socket, "What is the capital of Italy?", conversation=conversation
                )
                assert answered(frames), frames
                return conversation

        conversation = asyncio.run(through_the_outage())

        answers = assistant_messages(olga, conversation)
        assert [m["status"] for m in answers] == ["complete", "complete"]
        assert all(m["content"] for m in answers)
        assert production.still_running(), production.logs()


def test_a_redis_restart_mid_answer_ends_that_stream_and_the_conversation_goes_on(
    tmp_path, own_redis, postgres_server_url
):
    with throwaway_database(postgres_server_url) as database_url:
        env = {"DATABASE_URL": database_url, "REDIS_URL": own_redis.url, "CHAT_STALL_TIMEOUT": "10"}
        with Production(tmp_path / "var", env) as production:
            site = production.site
            rita = production.sign_in("rita")
            cookie = rita.cookie_header()
            restarted = {}

            async def restart_redis_after_some_text(frames):
                deltas = [f for f in frames if f["type"] == "chat.delta"]
                if len(deltas) >= 3 and not restarted:
                    restarted["at"] = time.monotonic()
                    await asyncio.to_thread(own_redis.stop)
                    await asyncio.to_thread(own_redis.start)

            async def through_the_restart():
                frames, _ = await ask(site, cookie, "What is the capital of France?")
                assert answered(frames), frames
                conversation = frames[0]["conversation"]
                try:
                    frames, _ = await ask(
                        site,
                        cookie,
                        "Write a long story about a lighthouse keeper.",
                        conversation=conversation,
                        max_new_tokens=200,
                        until=restart_redis_after_some_text,
                    )
                    ended = frames[-1]
                except websockets.ConnectionClosedError as error:
                    # The socket's own channel lived in Redis: it may close (code 1011),
                    # and the page reconnects by itself.
                    ended = {"type": "closed", "code": error.rcvd.code if error.rcvd else None}
                assert restarted, "the answer finished before Redis could be restarted"
                await asyncio.to_thread(wait_until_ready, site, 60)
                # The worker kept writing the interrupted answer; it ends by itself.
                await asyncio.to_thread(wait_until_written, rita, conversation)
                frames, text = await ask(
                    site, cookie, "What is the capital of Italy?", conversation=conversation
                )
                assert answered(frames), frames
                assert text
                return conversation, ended

            conversation, ended = asyncio.run(through_the_restart())

            # The interrupted stream ended at once (a closed socket or chat.done), and the
            # worker, which never stopped, stored the whole answer all the same.
            assert ended == {"type": "closed", "code": 1011} or ended["type"] == "chat.done", ended
            answers = assistant_messages(rita, conversation)
            assert [m["status"] for m in answers] == ["complete"] * 3, (ended, production.logs())
            assert all(m["content"] for m in answers)
            assert production.still_running(), production.logs()


def test_a_full_queue_answers_busy_at_once(tmp_path, postgres_server_url, redis_server_url):
    with throwaway_database(postgres_server_url) as database_url:
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server_url,
            "LLM_MAX_BATCH": "1",
            "LLM_QUEUE_SIZE": "0",
        }
        with Production(tmp_path / "var", env) as production:
            site = production.site
            first = production.sign_in("first").cookie_header()
            second = production.sign_in("second").cookie_header()

            async def two_at_once():
                answering = asyncio.Event()

                async def mark_answering(frames):
                    if any(f["type"] == "chat.delta" for f in frames):
                        answering.set()

                long_answer = asyncio.create_task(
                    ask(
                        site,
                        first,
                        "Write a long story about a lighthouse keeper.",
                        max_new_tokens=300,
                        until=mark_answering,
                    )
                )
                await asyncio.wait_for(answering.wait(), 60)
                # The heartbeat (every 2 s) carries the worker's load to the web process.
                await asyncio.sleep(3)
                asked = time.monotonic()
                frames, _ = await ask(site, second, "What is the capital of France?")
                waited = time.monotonic() - asked
                first_frames, _ = await long_answer
                return frames, waited, first_frames

            frames, waited, first_frames = asyncio.run(two_at_once())

            assert frames[-1]["type"] == "error", frames
            assert frames[-1]["code"] == "busy"
            assert waited < PROMPT_ERROR_SECONDS
            assert answered(first_frames), first_frames
