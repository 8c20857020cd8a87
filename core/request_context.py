"""The request being served, for code that has no request argument (signal receivers).

``RequestContextMiddleware`` gives every request an id (``request.request_id``, echoed in
the ``X-Request-ID`` response header) and makes the request reachable through
``current_request()`` for as long as it is being handled. A trusted proxy may pass its own
request id so that one id follows a request across the proxy's log and ours.
"""

import re
import uuid
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.decorators import sync_and_async_middleware

from core.network import NetworkPolicy

_current_request: ContextVar = ContextVar("current_request", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def current_request():
    """The HttpRequest being handled in this context, or None outside a request."""
    return _current_request.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def _request_id(request, policy: NetworkPolicy) -> str:
    offered = request.META.get("HTTP_X_REQUEST_ID", "")
    if (
        offered
        and _VALID_REQUEST_ID.fullmatch(offered)
        and policy.is_trusted_proxy(request.META.get("REMOTE_ADDR"))
    ):
        return offered
    return new_request_id()


@sync_and_async_middleware
def RequestContextMiddleware(get_response):
    """Give each request an id and make it the current request while it is handled."""
    policy = NetworkPolicy.from_settings()

    if iscoroutinefunction(get_response):

        async def middleware(request):
            request.request_id = _request_id(request, policy)
            token = _current_request.set(request)
            try:
                response = await get_response(request)
            finally:
                _current_request.reset(token)
            response[REQUEST_ID_HEADER] = request.request_id
            return response

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            request.request_id = _request_id(request, policy)
            token = _current_request.set(request)
            try:
                response = get_response(request)
            finally:
                _current_request.reset(token)
            response[REQUEST_ID_HEADER] = request.request_id
            return response

    return middleware
