"""/v1 is answered here, before the session, CSRF, sign-in and second-factor middleware: the
API authenticates each request by its token (api.auth) and never reads or sets a cookie or a
session, so CSRF, which protects cookie-carrying browsers, has nothing to protect.

It sits after the internal-network check and the request context (the same policy and audit
as every page) and answers unknown /v1 paths with OpenAI's 404 object.
"""

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction
from django.urls import Resolver404, resolve
from django.utils.decorators import sync_and_async_middleware

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


@sync_and_async_middleware
def api_middleware(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request):
            if is_api(request):
                return await _answer(request)
            return await get_response(request)

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            if is_api(request):
                return async_to_sync(_answer)(request)
            return get_response(request)

    return middleware
