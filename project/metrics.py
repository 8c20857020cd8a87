"""Every Prometheus metric of the project, and the two ways they are scraped.

Web processes answer ``/metrics`` (``MetricsEndpointMiddleware``) to addresses in
METRICS_NETWORKS only; the site's network policy applies first, and no sign-in is asked
because Prometheus cannot do a second factor. An inference worker started with ``manage.py inference_worker`` runs in
its own process and serves its metrics on WORKER_METRICS_PORT
(``start_worker_metrics_server``); the embedded worker runs inside the web process, so its
metrics are on that process's ``/metrics``. Each process exposes only its own numbers:
several daphne processes are several scrape targets, and no multiprocess mode is needed.

Labels stay few and fixed (method, status class, finish reason, worker state, worker name),
never a path or a user, so the number of series does not grow with traffic.

The sign-in receivers below are connected when this module is imported; the middleware in
settings.MIDDLEWARE imports it when a web process builds its request handler, before the
first request.
"""

import contextlib
import ipaddress
import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpResponse, HttpResponseNotAllowed
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import sync_and_async_middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from project.network import parse_address

logger = logging.getLogger(__name__)

# --- Web processes -------------------------------------------------------------------------

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "llmchat_http_requests",
    "HTTP responses this web process sent, by request method and status class (2xx, 4xx, ...).",
    ["method", "status_class"],
)
WEBSOCKETS_ACTIVE = Gauge(
    "llmchat_websockets_active", "Chat websockets open on this web process (after sign-in)."
)
WORKER_STATES = ("loading", "ready", "stopping")
WORKERS = Gauge(
    "llmchat_inference_workers",
    "Inference workers with a live heartbeat in the shared registry, as this web process "
    "sees them, by state.",
    ["state"],
)
LOGIN_FAILURES = Counter(
    "llmchat_login_failures",
    "Sign-ins refused at the password step: a wrong username or password, or a lockout.",
)
AUDIT_EVENTS = Counter(
    "llmchat_audit_events",
    "Audit events committed by this process, by action (the catalogue in docs/security.md: "
    "otp.failure, network.refused, permission.denied, ...) and outcome.",
    ["action", "outcome"],
)
LOGIN_LOCKOUTS = Counter(
    "llmchat_login_lockouts",
    "Sign-in attempts that locked a username and address pair out, or came while it was "
    "locked out (django-axes; each is a lockout audit event).",
)

# --- Inference workers (each in its own process, or embedded in the web process) ------------

QUEUE_DEPTH = Gauge(
    "llmchat_inference_queue_depth",
    "Requests this worker accepted that wait for a place in its running batch.",
)
QUEUE_CAPACITY = Gauge(
    "llmchat_inference_queue_capacity",
    "Requests this worker lets wait beyond its batch (LLM_QUEUE_SIZE); past it, users are "
    "told the assistant is busy.",
)
ACTIVE_SEQUENCES = Gauge(
    "llmchat_inference_active_sequences",
    "Answers this worker is decoding together in its running batch.",
)
TOKENS_GENERATED = Counter(
    "llmchat_inference_tokens_generated", "Answer tokens this worker generated."
)
GENERATIONS = Counter(
    "llmchat_inference_generations",
    "Answers this worker finished, by finish reason (stop, length, cancelled, error).",
    ["finish_reason"],
)
# From 50 ms (a short prompt on a GPU) to 30 s (a long prompt on a busy CPU worker).
TIME_TO_FIRST_TOKEN = Histogram(
    "llmchat_inference_time_to_first_token_seconds",
    "Time from a worker accepting a request to the first text of its answer.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0),
)
# From 5 ms (a small batch on a GPU) to 2 s (a long prefill holding up the whole batch).
INTER_TOKEN_LATENCY = Histogram(
    "llmchat_inference_inter_token_latency_seconds",
    "Time between two tokens of one answer, observed once per token.",
    buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0),
)
WORKER_LAST_HEARTBEAT = Gauge(
    "llmchat_worker_last_heartbeat_timestamp_seconds",
    "When this worker last wrote its heartbeat to the shared registry (Unix time).",
    ["worker"],
)

OTHER = "other"
METRICS_PATH = "/metrics"


def _method_label(method: str | None) -> str:
    return method if method in HTTP_METHODS else OTHER


@sync_and_async_middleware
def RequestMetricsMiddleware(get_response):
    """Count every response, refusals and redirects included (first in MIDDLEWARE)."""

    def count(request, response):
        status_class = f"{response.status_code // 100}xx"
        HTTP_REQUESTS.labels(_method_label(request.method), status_class).inc()
        return response

    if iscoroutinefunction(get_response):

        async def middleware(request):
            return count(request, await get_response(request))

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            return count(request, get_response(request))

    return middleware


def _refresh_worker_gauge() -> None:
    from chat.inference.registry import live_workers

    counts = dict.fromkeys(WORKER_STATES, 0)
    try:
        workers = live_workers()
    except Exception:
        # The shared cache (Redis) is down: this process sees no worker, and says why.
        logger.warning("The worker registry could not be read for /metrics", exc_info=True)
        workers = []
    for worker in workers:
        if worker.get("state") in counts:
            counts[worker["state"]] += 1
    for state, count in counts.items():
        WORKERS.labels(state).set(count)


def _may_scrape(request) -> bool:
    # REMOTE_ADDR is the client address InternalNetworkMiddleware decided on.
    address = parse_address(request.META.get("REMOTE_ADDR"))
    return address is not None and any(
        address.version == network.version and address in network
        for network in settings.METRICS_NETWORKS
    )


def _scrape(request) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    _refresh_worker_gauge()
    response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
    add_never_cache_headers(response)
    return response


@sync_and_async_middleware
def MetricsEndpointMiddleware(get_response):
    """Answer Prometheus at /metrics, for METRICS_NETWORKS only (after the network check).

    There is no URL route: for any other address the request goes on like one for a page
    that does not exist (a sign-in redirect, or 404 once signed in), so nobody else can tell
    the endpoint is there. Answering here, before sessions and the second-factor check, is
    also what lets Prometheus in without signing in.
    """

    def is_scrape(request) -> bool:
        if request.path != METRICS_PATH:
            return False
        if _may_scrape(request):
            return True
        logger.warning(
            "metrics.refused: %s is not in METRICS_NETWORKS", request.META.get("REMOTE_ADDR")
        )
        return False

    if iscoroutinefunction(get_response):

        async def middleware(request):
            if is_scrape(request):
                return await sync_to_async(_scrape)(request)
            return await get_response(request)

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            if is_scrape(request):
                return _scrape(request)
            return get_response(request)

    return middleware


@receiver(user_login_failed, dispatch_uid="metrics_login_failure")
def _count_login_failure(sender, **kwargs):
    LOGIN_FAILURES.inc()


@receiver(user_locked_out, dispatch_uid="metrics_lockout")
def _count_lockout(sender, **kwargs):
    LOGIN_LOCKOUTS.inc()


# --- Hooks for the inference worker --------------------------------------------------------


class GenerationMetrics:
    """Observes one answer as its tokens arrive: tokens and the gaps between them. (Its time
    to first token is observed by the worker, which keeps that moment anyway.)"""

    def __init__(self):
        self.tokens = 0
        self.last_token_at: float | None = None

    def step(self, event, now: float) -> None:
        """Account for one scheduler event (cumulative ``completion_tokens``, new ``text``)."""
        new_tokens = event.completion_tokens - self.tokens
        if new_tokens > 0:
            TOKENS_GENERATED.inc(new_tokens)
            if self.last_token_at is not None:
                # Tokens of one step share its end time: spread the gap over them.
                gap = (now - self.last_token_at) / new_tokens
                for _ in range(new_tokens):
                    INTER_TOKEN_LATENCY.observe(gap)
            self.tokens = event.completion_tokens
            self.last_token_at = now

    def finished(self, finish_reason: str) -> None:
        GENERATIONS.labels(finish_reason).inc()


def watch_scheduler(scheduler) -> None:
    """Read queue depth and batch size from ``scheduler`` at each scrape."""
    QUEUE_DEPTH.set_function(lambda: scheduler.queued())
    ACTIVE_SEQUENCES.set_function(lambda: scheduler.active())
    QUEUE_CAPACITY.set(settings.LLM_QUEUE_SIZE)


def worker_heartbeat(name: str) -> None:
    WORKER_LAST_HEARTBEAT.labels(name).set(time.time())


def worker_stopped(name: str) -> None:
    """The worker no longer serves: its gauges read zero and its heartbeat series ends."""
    QUEUE_DEPTH.set_function(lambda: 0)
    ACTIVE_SEQUENCES.set_function(lambda: 0)
    # Some prometheus-client versions raise KeyError for a worker that never beat.
    with contextlib.suppress(KeyError):
        WORKER_LAST_HEARTBEAT.remove(name)


class MetricsServerError(Exception):
    """The worker's metrics port could not be opened; the message says what to change."""


def start_worker_metrics_server(port: int, addr: str, *, certfile=None, keyfile=None):
    """Serve this process's metrics on ``addr:port`` in a thread; None when port is 0.

    Returns the server, whose ``shutdown()`` stops it. With ``certfile`` and ``keyfile`` it
    speaks HTTPS only.
    """
    if not port:
        return None
    if not 0 < port <= 65535:
        raise MetricsServerError(
            f"{port} is not a port number: use 1 to 65535, or 0 to turn the metrics port off."
        )
    try:
        server, _thread = start_http_server(
            port,
            addr=addr,
            registry=REGISTRY,
            certfile=str(certfile) if certfile else None,
            keyfile=str(keyfile) if keyfile else None,
        )
    except OSError as exc:
        raise MetricsServerError(
            f"The worker's metrics could not be served on {addr} port {port} ({exc}). Check "
            "WORKER_METRICS_PORT or --metrics-port (a free port, or 0 for none), "
            "WORKER_METRICS_ADDR and, for TLS, WORKER_METRICS_CERT and WORKER_METRICS_KEY."
        ) from None
    scheme = "https" if certfile else "http"
    host = f"[{addr}]" if ":" in addr else addr
    logger.info("Worker metrics on %s://%s:%d/metrics", scheme, host, port)
    if not certfile and not _is_loopback(addr):
        logger.warning(
            "Worker metrics are served without TLS on %s; set WORKER_METRICS_CERT and "
            "WORKER_METRICS_KEY, or bind WORKER_METRICS_ADDR to loopback.",
            addr,
        )
    return server


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return addr == "localhost"
