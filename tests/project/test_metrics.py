"""/metrics for Prometheus: only from METRICS_NETWORKS, no sign-in, counters that move."""

import asyncio
import importlib.util
import ipaddress
import os
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.http import HttpResponse
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from chat.inference import registry
from core.keys import ensure_keys
from core.metrics_endpoint import MetricsEndpointMiddleware
from tests.support.personas import PASSWORD, login_2fa
from tests.support.server import REPO
from tests.support.services import environ_without_profile

pytestmark = pytest.mark.django_db(transaction=True)

METRIC_NAMES = (
    "llmchat_http_requests_total",
    "llmchat_websockets_active",
    "llmchat_inference_workers",
    "llmchat_inference_model_workers",
    "llmchat_login_failures_total",
    "llmchat_login_lockouts_total",
    "llmchat_inference_queue_depth",
    "llmchat_inference_queue_capacity",
    "llmchat_inference_active_sequences",
    "llmchat_inference_tokens_generated_total",
    "llmchat_inference_time_to_first_token_seconds",
    "llmchat_inference_inter_token_latency_seconds",
    "llmchat_inference_generations_total",
    "llmchat_worker_last_heartbeat_timestamp_seconds",
    "llmchat_audit_events_total",
)


def scrape(address="127.0.0.1"):
    """Status and body of GET /metrics from ``address``, by a client that never signed in."""
    response = Client().get("/metrics", REMOTE_ADDR=address, secure=True)
    return response.status_code, response.content.decode()


def samples() -> dict:
    """Every sample of a scrape from loopback, keyed by name and labels."""
    status, body = scrape()
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(name, **labels) -> float:
    return samples().get((name, tuple(sorted(labels.items()))), 0.0)


def test_prometheus_on_loopback_reads_every_metric_without_signing_in():
    status, body = scrape("127.0.0.1")

    assert status == 200
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in body, name
    assert "# HELP llmchat_inference_time_to_first_token_seconds Time from" in body


def test_the_answer_is_in_prometheus_text_format_and_never_cached():
    response = Client().get("/metrics", REMOTE_ADDR="::1", secure=True)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]


def test_each_response_is_counted_by_method_and_status_class():
    before = value("llmchat_http_requests_total", method="GET", status_class="3xx")

    # Not signed in: the chat page redirects to sign-in.
    Client().get("/", REMOTE_ADDR="10.1.1.1", secure=True)

    after = value("llmchat_http_requests_total", method="GET", status_class="3xx")
    assert after == before + 1


def test_a_refusal_by_the_network_policy_is_counted_too():
    before = value("llmchat_http_requests_total", method="GET", status_class="4xx")

    Client().get("/", REMOTE_ADDR="203.0.113.9", secure=True)

    assert value("llmchat_http_requests_total", method="GET", status_class="4xx") == before + 1


def test_an_unusual_method_does_not_become_a_label_of_its_own():
    Client().generic("BREW", "/", REMOTE_ADDR="10.1.1.1", secure=True)

    methods = {dict(labels).get("method") for name, labels in samples() if "http" in name}
    assert "BREW" not in methods
    assert "other" in methods


def test_outside_metrics_networks_it_answers_like_a_page_that_does_not_exist(employee):
    signed_in = Client()
    login_2fa(signed_in, employee)

    for client in (Client(), signed_in):
        for method in ("get", "post", "head"):
            request = getattr(client, method)
            metrics = request("/metrics", REMOTE_ADDR="10.0.0.7", secure=True)
            unknown = request("/no-such-page", REMOTE_ADDR="10.0.0.7", secure=True)

            assert metrics.status_code == unknown.status_code, (method, metrics.status_code)
            assert b"llmchat_" not in metrics.content
    # Signed in, that is a 404; before signing in, the way to sign-in, as for every page.
    assert signed_in.get("/metrics", REMOTE_ADDR="10.0.0.7", secure=True).status_code == 404
    refused = Client().get("/metrics", REMOTE_ADDR="10.0.0.7", secure=True)
    assert refused.status_code == 302
    assert refused["Location"].startswith("/accounts/login/")


def test_the_server_log_says_why_it_was_refused(caplog):
    with caplog.at_level("WARNING", logger="core.metrics_endpoint"):
        scrape("10.0.0.7")

    assert "metrics.refused: 10.0.0.7 is not in METRICS_NETWORKS" in caplog.text


def test_metrics_networks_decides_who_may_scrape(settings):
    settings.METRICS_NETWORKS = [ipaddress.ip_network("10.9.0.0/16")]

    assert scrape("10.9.8.7")[0] == 200
    assert scrape("127.0.0.1")[0] != 200


def test_the_site_network_policy_applies_before_metrics_networks(settings):
    settings.METRICS_NETWORKS = [ipaddress.ip_network("0.0.0.0/0")]

    assert scrape("203.0.113.9")[0] == 403


def test_prometheus_may_only_read():
    client = Client()

    assert client.head("/metrics", REMOTE_ADDR="127.0.0.1", secure=True).status_code == 200
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1", secure=True).status_code == 405


async def test_the_endpoint_answers_on_the_async_path_too(rf):
    async def page(request):
        return HttpResponse("a page")

    endpoint = MetricsEndpointMiddleware(page)

    scrape = await endpoint(rf.get("/metrics", REMOTE_ADDR="127.0.0.1"))
    refused = await endpoint(rf.get("/metrics", REMOTE_ADDR="10.0.0.7"))

    assert b"# TYPE llmchat_http_requests_total counter" in scrape.content
    assert refused.content == b"a page"


def test_failed_sign_ins_and_lockouts_are_counted(employee):
    failures = value("llmchat_login_failures_total")
    lockouts = value("llmchat_login_lockouts_total")

    for _ in range(5):
        Client().post(
            "/accounts/login/",
            {"username": "alice", "password": "wrong password 123"},
            REMOTE_ADDR="10.2.2.2",
            secure=True,
        )

    assert value("llmchat_login_failures_total") == failures + 5
    assert value("llmchat_login_lockouts_total") == lockouts + 1


def test_wrong_authenticator_codes_are_counted_as_audit_events(password_only_user):
    from tests.support.personas import enrol_totp

    enrol_totp(password_only_user)
    client = Client()
    client.post(
        "/accounts/login/",
        {"username": password_only_user.username, "password": PASSWORD},
        REMOTE_ADDR="10.2.2.3",
        secure=True,
    )
    refused = value("llmchat_audit_events_total", action="otp.failure", outcome="failure")

    client.post("/accounts/verify/", {"code": "000000"}, REMOTE_ADDR="10.2.2.3", secure=True)

    assert (
        value("llmchat_audit_events_total", action="otp.failure", outcome="failure") == refused + 1
    )


def test_live_workers_are_counted_by_state_from_the_registry():
    registry.beat("w-ready", {"state": "ready"})
    registry.beat("w-loading", {"state": "loading"})

    assert value("llmchat_inference_workers", state="ready") == 1
    assert value("llmchat_inference_workers", state="loading") == 1

    registry.forget("w-ready")

    assert value("llmchat_inference_workers", state="ready") == 0


def test_live_workers_are_counted_by_model_and_state():
    registry.beat("w-small", {"state": "ready", "model": "small-model"})
    registry.beat("w-large", {"state": "loading", "model": "large-model"})

    assert value("llmchat_inference_model_workers", model="small-model", state="ready") == 1
    assert value("llmchat_inference_model_workers", model="large-model", state="ready") == 0
    assert value("llmchat_inference_model_workers", model="large-model", state="loading") == 1
    registry.forget("w-small")
    registry.forget("w-large")


def test_an_unreadable_registry_shows_no_worker_instead_of_failing_the_scrape(monkeypatch):
    registry.beat("w-ready", {"state": "ready"})

    def redis_is_down():
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(registry, "live_workers", redis_is_down)

    assert value("llmchat_inference_workers", state="ready") == 0


async def test_open_chat_sockets_are_counted_until_they_close(employee):
    from project.asgi import application

    client = Client()
    await sync_to_async(login_2fa)(client, employee)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in client.cookies.items())

    async def from_intranet(scope, receive, send):
        return await application(dict(scope, client=["10.0.0.60", 40000]), receive, send)

    def open_sockets():
        return value("llmchat_websockets_active")

    before = await sync_to_async(open_sockets)()
    communicator = WebsocketCommunicator(
        from_intranet,
        "/ws/chat/",
        headers=[
            (b"origin", b"https://localhost:8443"),
            (b"host", b"localhost:8443"),
            (b"cookie", cookie.encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    during = await sync_to_async(open_sockets)()
    await communicator.disconnect()
    await asyncio.sleep(0)
    after = await sync_to_async(open_sockets)()
    await sync_to_async(connections.close_all)()

    assert (during, after) == (before + 1, before)


async def test_a_refused_chat_socket_is_not_counted():
    from project.asgi import application

    before = await sync_to_async(value)("llmchat_websockets_active")
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", b"https://localhost:8443")]
    )
    connected, _ = await communicator.connect()
    await communicator.disconnect()

    assert connected is False
    assert await sync_to_async(value)("llmchat_websockets_active") == before


# --- settings ------------------------------------------------------------------------------


def settings_module(monkeypatch, tmp_path, **env):
    """project/settings.py executed afresh with ``env``, without touching Django's settings."""
    ensure_keys(tmp_path)
    for name in set(os.environ) - set(environ_without_profile()):
        monkeypatch.delenv(name)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    spec = importlib.util.spec_from_file_location(
        "settings_under_test", REPO / "project" / "settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metrics_networks_is_loopback_unless_configured(monkeypatch, tmp_path):
    loaded = settings_module(monkeypatch, tmp_path)

    assert [str(n) for n in loaded.METRICS_NETWORKS] == ["127.0.0.1/32", "::1/128"]
    assert loaded.WORKER_METRICS_PORT == 0
    assert loaded.WORKER_METRICS_ADDR == "127.0.0.1"


def test_a_malformed_metrics_network_stops_start_up_with_a_sentence(monkeypatch, tmp_path):
    with pytest.raises(
        ImproperlyConfigured, match=re.escape("METRICS_NETWORKS contains '10.0.0.0/33'")
    ):
        settings_module(monkeypatch, tmp_path, METRICS_NETWORKS="127.0.0.1/32,10.0.0.0/33")


def test_a_worker_metrics_certificate_without_its_key_stops_start_up(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="WORKER_METRICS_CERT and WORKER_METRICS_KEY"):
        settings_module(monkeypatch, tmp_path, WORKER_METRICS_CERT="/etc/ssl/worker.crt")
