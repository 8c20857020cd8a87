"""The API's limits, each refused with 429 and Retry-After: requests a minute and tokens a
day per token, and answers running at once per person, counted together with the answers
their chat sockets are writing."""

import contextlib
import datetime
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from api import services
from api.errors import rate_limited
from chat import services as chat_services

# The in-flight count lives as long as an answer may; a process that dies mid-answer leaves
# at most this long a count that is too high.
IN_FLIGHT_TTL_SECONDS = 600


def _incr(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def check_request_rate(token) -> None:
    """Count this request against the token's minute; ApiError (429) past the limit."""
    now = time.time()
    minute = int(now // 60)
    count = _incr(f"api.rpm.{token.pk}.{minute}", 61)
    if count > settings.API_REQUESTS_PER_MINUTE:
        services.record_refusal(token, "requests_per_minute")
        raise rate_limited(
            f"This token may make {settings.API_REQUESTS_PER_MINUTE} requests a minute; wait "
            "for the next minute.",
            retry_after=max(1, math.ceil((minute + 1) * 60 - now)),
            code="rate_limit_exceeded",
        )


def check_daily_tokens(token) -> None:
    used = services.tokens_used_today(token)
    if used >= settings.API_TOKENS_PER_DAY:
        services.record_refusal(token, "tokens_per_day", used_tokens=used)
        now = timezone.now().astimezone(datetime.UTC)
        midnight = datetime.datetime.combine(
            now.date() + datetime.timedelta(days=1), datetime.time(), tzinfo=datetime.UTC
        )
        raise rate_limited(
            f"This token has used its {settings.API_TOKENS_PER_DAY} tokens for today (UTC); "
            "it may go on tomorrow.",
            retry_after=max(1, math.ceil((midnight - now).total_seconds())),
            code="tokens_per_day_exceeded",
        )


def _in_flight_key(user) -> str:
    return f"api.generating.{user.pk}"


def api_generations_running(user) -> int:
    return cache.get(_in_flight_key(user)) or 0


def take_generation_slot(token, *, held: bool = True) -> None:
    """Hold one of the person's CHAT_MAX_GENERATIONS_PER_USER places until
    ``release_generation_slot``; ApiError (429) when their chat sockets and API calls
    already hold them all. chat.services.generations_running counts these places too (api
    registers ``api_generations_running`` there), so the chat socket sees them.

    With ``held=False`` only check: an answer that is stored as a message counts itself."""
    user = token.user
    if held:
        _incr(_in_flight_key(user), IN_FLIGHT_TTL_SECONDS)
    running = chat_services.generations_running(user) + (0 if held else 1)
    if running > settings.CHAT_MAX_GENERATIONS_PER_USER:
        if held:
            release_generation_slot(user)
        services.record_refusal(token, "concurrent_generations")
        raise rate_limited(
            f"You already have {running - 1} answers being written (the limit is "
            f"{settings.CHAT_MAX_GENERATIONS_PER_USER}); wait for one to finish.",
            retry_after=1,
            code="concurrent_generations_exceeded",
        )


def release_generation_slot(user) -> None:
    with contextlib.suppress(ValueError):
        cache.decr(_in_flight_key(user))
