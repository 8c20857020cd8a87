"""The inference worker's metrics: tokens, latencies, queue and heartbeat, and its own port."""

import asyncio
import contextlib
import http.client
import socket
import ssl
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import Client
from prometheus_client import REGISTRY

from chat.inference import metrics
from chat.management.commands import inference_worker
from core import metrics_endpoint
from tests.support.inference import ScriptedScheduler, running_worker
from tests.support.personas import login_2fa

ORIGIN = b"https://localhost:8443"
REPLY_WORDS = len(ScriptedScheduler.reply.split(" "))


def sample(name, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def chat_round_trip(user, content: str) -> list[dict]:
    """Send ``content`` over the real chat socket as ``user`` to a scripted in-process worker;
    return every frame up to chat.done."""
    from project.asgi import application

    client = Client()
    await sync_to_async(login_2fa)(client, user)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())

    async def from_intranet(scope, receive, send):
        return await application(dict(scope, client=["10.0.0.60", 40000]), receive, send)

    async with running_worker("metrics-worker"):
        communicator = WebsocketCommunicator(
            from_intranet,
            "/ws/chat/",
            headers=[
                (b"origin", ORIGIN),
                (b"host", b"localhost:8443"),
                (b"cookie", cookie.encode()),
            ],
        )
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to(
            {"type": "chat.send", "conversation": None, "content": content, "client_id": "c1"}
        )
        frames = []
        while not frames or frames[-1]["type"] != "chat.done":
            frames.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
    await sync_to_async(connections.close_all)()
    return frames


def scraped_from_the_web_process() -> str:
    return Client().get("/metrics", REMOTE_ADDR="127.0.0.1", secure=True).content.decode()


@pytest.mark.django_db(transaction=True)
async def test_an_answer_counts_its_tokens_and_latencies_on_the_web_processes_metrics(employee):
    tokens = sample("llmchat_inference_tokens_generated_total")
    first_tokens = sample("llmchat_inference_time_to_first_token_seconds_count")
    gaps = sample("llmchat_inference_inter_token_latency_seconds_count")
    stops = sample("llmchat_inference_generations_total", finish_reason="stop")

    frames = await chat_round_trip(employee, "What is the capital of France?")

    assert frames[-1]["finish_reason"] == "stop"
    assert sample("llmchat_inference_tokens_generated_total") == tokens + REPLY_WORDS
    assert sample("llmchat_inference_time_to_first_token_seconds_count") == first_tokens + 1
    # One gap between each two tokens of the answer.
    assert sample("llmchat_inference_inter_token_latency_seconds_count") == gaps + REPLY_WORDS - 1
    assert sample("llmchat_inference_generations_total", finish_reason="stop") == stops + 1
    # The embedded profile: the worker shares the web process, so /metrics shows its numbers.
    body = await sync_to_async(scraped_from_the_web_process)()
    assert f"llmchat_inference_tokens_generated_total {tokens + REPLY_WORDS}" in body


@pytest.mark.django_db(transaction=True)
async def test_the_worker_reports_its_queue_batch_and_heartbeat_until_it_stops():
    async with running_worker("beating-worker") as worker:
        for _ in range(200):
            beat = sample(
                "llmchat_worker_last_heartbeat_timestamp_seconds", worker="beating-worker"
            )
            if beat:
                break
            await asyncio.sleep(0.01)
        worker.scheduler.queued = lambda: 3
        worker.scheduler.active = lambda: 2

        assert abs(beat - time.time()) < 5
        assert sample("llmchat_inference_queue_depth") == 3
        assert sample("llmchat_inference_active_sequences") == 2
        assert sample("llmchat_inference_queue_capacity") == settings.LLM_QUEUE_SIZE

    assert (
        REGISTRY.get_sample_value(
            "llmchat_worker_last_heartbeat_timestamp_seconds", {"worker": "beating-worker"}
        )
        is None
    )
    assert sample("llmchat_inference_queue_depth") == 0


def test_tokens_released_together_share_the_gap_since_the_previous_ones():
    observed = metrics.GenerationMetrics()
    within_20ms = sample("llmchat_inference_inter_token_latency_seconds_bucket", le="0.02")
    within_200ms = sample("llmchat_inference_inter_token_latency_seconds_bucket", le="0.2")

    observed.step(SimpleNamespace(completion_tokens=1, text="Hel"), now=10.0)
    # Two tokens in 0.3 s (a character split over tokens): 0.15 s each.
    observed.step(SimpleNamespace(completion_tokens=3, text="lo"), now=10.3)

    assert sample("llmchat_inference_inter_token_latency_seconds_bucket", le="0.02") == within_20ms
    assert (
        sample("llmchat_inference_inter_token_latency_seconds_bucket", le="0.2") == within_200ms + 2
    )


# --- the worker's own metrics port ---------------------------------------------------------


def fetch(port: int, *, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        connection = http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@contextlib.contextmanager
def metrics_server(port, addr="127.0.0.1", **tls):
    server = metrics_endpoint.start_metrics_server(port, addr, **tls)
    try:
        yield server
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def test_the_worker_serves_its_metrics_over_http_on_its_port(free_port):
    with metrics_server(free_port):
        status, body = fetch(free_port)

    assert status == 200
    assert "# TYPE llmchat_inference_tokens_generated_total counter" in body
    assert "# TYPE llmchat_worker_last_heartbeat_timestamp_seconds gauge" in body


def test_port_zero_serves_nothing():
    assert metrics_endpoint.start_metrics_server(0, "127.0.0.1") is None


def test_a_port_in_use_stops_the_worker_with_a_sentence(free_port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        with pytest.raises(metrics_endpoint.MetricsServerError, match="WORKER_METRICS_PORT"):
            metrics_endpoint.start_metrics_server(free_port, "127.0.0.1")


def test_with_a_certificate_the_worker_serves_https_only(settings, tmp_path, free_port):
    settings.TLS_DIR = tmp_path / "tls"
    call_command("gencert")
    tls = {"certfile": settings.TLS_DIR / "server.crt", "keyfile": settings.TLS_DIR / "server.key"}

    with metrics_server(free_port, **tls):
        status, body = fetch(
            free_port, context=ssl.create_default_context(cafile=settings.TLS_DIR / "ca.crt")
        )
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            fetch(free_port)

    assert status == 200
    assert "llmchat_inference_queue_depth" in body


@pytest.mark.django_db
def test_the_inference_worker_command_opens_the_port_it_is_given(settings, monkeypatch, free_port):
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    started = []
    start = metrics_endpoint.start_metrics_server

    def start_and_remember(*args, **kwargs):
        started.append(start(*args, **kwargs))
        return started[-1]

    async def serve_one_scrape(self, worker):
        self.scraped = await asyncio.to_thread(fetch, free_port)

    monkeypatch.setattr(metrics_endpoint, "start_metrics_server", start_and_remember)
    monkeypatch.setattr(inference_worker.Command, "_serve", serve_one_scrape)
    command = inference_worker.Command()
    try:
        call_command(command, "--metrics-port", str(free_port))
    finally:
        for server in started:
            server.shutdown()
            server.server_close()

    status, body = command.scraped
    assert status == 200
    assert "llmchat_inference_tokens_generated_total" in body
