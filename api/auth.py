"""Who is calling /v1: a personal token in ``Authorization: Bearer``, nothing else (no
cookie, no session, no token in the URL), allowed to chat and holding the scope asked for."""

import functools

from asgiref.sync import sync_to_async

from accounts.roles import may_chat
from api import limits, services
from api.errors import ApiError, forbidden, unauthorized


def _authenticate(request, scope: str):
    presented = services.bearer_token(request.headers.get("Authorization", ""))
    result = services.authenticate(
        presented, source=request.META.get("REMOTE_ADDR", ""), request=request
    )
    if isinstance(result, services.Refusal):
        raise unauthorized(result.detail)
    token = result
    if not may_chat(token.user):
        services.record_refusal(token, "not_an_employee", request=request)
        raise forbidden("Your account may not use the assistant.", code="not_allowed")
    if scope not in token.scope_list:
        services.record_refusal(token, "scope", request=request, wanted=scope)
        raise forbidden(
            f"This token may not use {scope}; make a token with the {scope!r} scope.",
        )
    limits.check_request_rate(token)
    return token


def token_required(scope: str):
    """Decorate an async /v1 view: ``request.api_token`` and ``request.user`` are the
    caller's, or the view is not run and the caller gets OpenAI's 401 or 403 (or 429 past
    the token's requests a minute)."""

    def decorate(view):
        @functools.wraps(view)
        async def wrapped(request, *args, **kwargs):
            try:
                token = await sync_to_async(_authenticate)(request, scope)
            except ApiError as error:
                return error.response()
            request.api_token = token
            request.user = token.user
            try:
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return error.response()

        return wrapped

    return decorate
