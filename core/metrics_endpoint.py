"""How metrics are scraped: ``/metrics`` on web processes, a port of its own on workers.

Web processes answer ``/metrics`` (``MetricsEndpointMiddleware``) to addresses in
METRICS_NETWORKS only; the site's network policy applies first, and no sign-in is asked
because Prometheus cannot do a second factor. An inference worker started with
``manage.py inference_worker`` runs in its own process and serves its metrics on
WORKER_METRICS_PORT (``start_metrics_server``); the embedded worker runs inside the web
process, so its metrics are on that process's ``/metrics``. Each process exposes only its
own numbers: several daphne processes are several scrape targets, and no multiprocess mode
is needed.
"""

import ipaddress
import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpResponse, HttpResponseNotAllowed
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import sync_and_async_middleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, start_http_server

from core.metrics import HTTP_REQUESTS
from core.network import parse_address

logger = logging.getLogger(__name__)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
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


def in_metrics_networks(request) -> bool:
    """Whether the client is in METRICS_NETWORKS: monitoring, which sees /metrics and
    /healthz's details without signing in."""
    # REMOTE_ADDR is the client address InternalNetworkMiddleware decided on.
    address = parse_address(request.META.get("REMOTE_ADDR"))
    return address is not None and any(
        address.version == network.version and address in network
        for network in settings.METRICS_NETWORKS
    )


def _scrape(request) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
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
        if in_metrics_networks(request):
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


class MetricsServerError(Exception):
    """The worker's metrics port could not be opened; the message says what to change."""


def start_metrics_server(port: int, addr: str, *, certfile=None, keyfile=None):
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
