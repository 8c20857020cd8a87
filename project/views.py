import asyncio
import sys
import time
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.directory import ldap_status
from accounts.oidc import provider_status
from audit.log import record
from chat.inference import registry
from chat.inference.worker import ensure_embedded_worker
from core.metrics_endpoint import in_metrics_networks

# A browser told "unavailable" may retry after this many seconds.
RETRY_AFTER_SECONDS = 30

# A health probe must answer quickly even when a dependency hangs; monitoring systems
# usually time out after 5 to 10 seconds, so each check gets 3.
HEALTH_CHECK_TIMEOUT_SECONDS = 3.0


def _ping_database() -> None:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_database() -> None:
    await sync_to_async(_ping_database)()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    # A channel of its own, not a process-local one ("...!..."): channels_redis serves all
    # of a process's local channels through one shared reader, which open websockets hold,
    # and the probe must not queue behind it.
    channel = f"healthz.{uuid.uuid4().hex}"
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("the channel layer returned a different message")


async def _run_check(check) -> dict:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), HEALTH_CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        result = {"ok": False, "error": f"no answer within {HEALTH_CHECK_TIMEOUT_SECONDS:g} s"}
    except Exception as exc:  # a failing dependency is a result here, not a crash
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    else:
        result = {"ok": True}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


async def _check_workers() -> dict:
    """At least one inference worker alive and ready; lists each with its model and, while
    its model fails to load, why."""
    try:
        workers = await asyncio.wait_for(
            sync_to_async(registry.live_workers)(), HEALTH_CHECK_TIMEOUT_SECONDS
        )
    except Exception as exc:  # the shared cache (Redis) is down: no worker can be seen
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300], "workers": []}
    listed = [
        {
            "name": w["name"],
            "state": w.get("state"),
            "model": w.get("model"),
            "active": w.get("active", 0),
            "queued": w.get("queued", 0),
            # Why its model failed to load (it keeps trying); None once loaded.
            "error": w.get("error"),
        }
        for w in workers
    ]
    states = {w["state"] for w in listed}
    models: dict[str, dict[str, int]] = {}
    for worker in listed:
        model = models.setdefault(worker["model"] or "", {})
        model[worker["state"]] = model.get(worker["state"], 0) + 1
    # Per model, how many of its workers are in each state: a model none serves "ready" is
    # down for whoever picks it, even while other models serve.
    result = {"ok": "ready" in states, "workers": listed, "models": models}
    if "ready" in states:
        return result
    if "loading" in states:
        result["error"] = "workers are loading"
    elif "failed" in states:
        result["error"] = "no worker could load its model; see each worker's error"
    else:
        result["error"] = "no inference worker is ready"
    return result


async def _check_directory(status_of) -> dict | None:
    """The company directory's or identity provider's state (accounts.directory,
    accounts.oidc), None where none is configured."""
    try:
        status = await asyncio.wait_for(
            sync_to_async(status_of, thread_sensitive=False)(), HEALTH_CHECK_TIMEOUT_SECONDS
        )
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {HEALTH_CHECK_TIMEOUT_SECONDS:g} s"}
    if status is None:
        return None
    result = {"ok": status["ok"], "checked_at": round(status["checked_at"])}
    if not status["ok"]:
        result["error"] = status["error"]
    return result


async def _may_see_details(request) -> bool:
    """Worker host names, process ids, queue sizes and timings are for monitoring (an
    address in METRICS_NETWORKS, as for /metrics) and for signed-in, verified staff."""
    if in_metrics_networks(request):
        return True
    user = await request.auser()
    return user.is_authenticated and user.is_staff and user.is_verified()


@never_cache
@require_GET
async def healthz(request):
    """200 when everything answers, 503 when something does not. Monitoring and staff see
    each part's state and what fails; anyone else only the overall status."""
    ensure_embedded_worker()
    database, channel_layer = await asyncio.gather(
        _run_check(_check_database), _run_check(_check_channel_layer)
    )
    checks = {"database": database, "channel_layer": channel_layer}
    checks["inference"] = await _check_workers()
    healthy = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if healthy else "failing"}
    for name, status_of in (("directory", ldap_status), ("identity_provider", provider_status)):
        check = await _check_directory(status_of)
        if check is None:
            continue
        checks[name] = check
        # Local accounts still sign in without them: "degraded" and 200, so a load balancer
        # keeps the site in while monitoring still sees the outage.
        if healthy and not check["ok"]:
            body["status"] = "degraded"
    if await _may_see_details(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
@require_GET
def livez(request):
    """200 while this process answers requests at all: it asks no database, cache, channel
    layer or worker, so an orchestrator restarts a process that hangs, not every process
    at once when a dependency they all share is down (that is /healthz's business)."""
    return JsonResponse({"status": "alive"})


def server_error(request):
    """500 for a failure in the code, 503 (with Retry-After) when the database is down: the
    page then says that nothing was lost and to come back in a minute."""
    error = sys.exc_info()[1]
    if isinstance(error, OperationalError | InterfaceError):
        response = render(request, "503.html", status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return render(request, "500.html", status=500)


def permission_denied(request, exception=None):
    """403 for a signed-in user who may not open a page; recorded as permission.denied."""
    record(
        "permission.denied",
        outcome="denied",
        request=request,
        method=request.method,
        path=request.path[:200],
    )
    reason = str(exception) if isinstance(exception, PermissionDenied) and str(exception) else ""
    return render(request, "403.html", {"reason": reason}, status=403)


def csrf_failure(request, reason=""):
    """403 for a form post that failed the CSRF check; recorded as csrf.failure."""
    record(
        "csrf.failure",
        outcome="denied",
        request=request,
        method=request.method,
        path=request.path[:200],
        reason=reason,
    )
    return render(request, "403_csrf.html", status=403)
