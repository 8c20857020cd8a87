"""/v1 is answered here, before the session, CSRF, sign-in and second-factor middleware: the
API authenticates each request by its token (api.auth) and never reads or sets a cookie or a
session, so CSRF, which protects cookie-carrying browsers, has nothing to protect.

It sits after the internal-network check and the request context (the same policy and audit
as every page) and answers unknown /v1 paths with OpenAI's 404 object.
"""

from asgiref.sync import markcoroutinefunction
from django.urls import Resolver404, resolve

from api.errors import not_found

PREFIX = "/v1/"
URLCONF = "api.urls_v1"


def is_api(request) -> bool:
    return request.path.startswith(PREFIX)


async def _answer(request):
    # Nothing downstream may see a browser's cookies: the API is not a session's.
    request.META.pop("HTTP_COOKIE", None)
    request.COOKIES = {}
    try:
        match = resolve(request.path_info, urlconf=URLCONF)
    except Resolver404:
        return not_found(f"There is no API endpoint {request.path}.").response()
    response = await match.func(request, *match.args, **match.kwargs)
    response.cookies.clear()
    return response


def api_middleware(get_response):
    """Async only: the API's answers wait on the channel layer on the server's event loop,
    and the middleware outside this one (all able to run either way) then run there too,
    instead of holding a thread for each call. Django wraps the synchronous middleware
    inside this one for every other request."""

    async def middleware(request):
        if is_api(request):
            return await _answer(request)
        return await get_response(request)

    return markcoroutinefunction(middleware)


api_middleware.async_capable = True
api_middleware.sync_capable = False
