"""The only code that changes API tokens and usage. Each function that changes data is atomic
and writes its audit event in the same transaction."""

import datetime
import secrets
import string
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django_otp import devices_for_user

from api.models import SCOPES, ApiToken, ApiUsage
from audit.log import record, record_probe

# Every token starts with this, so secret scanners and people recognise one.
TOKEN_START = "llm-"  # noqa: S105 (a public marker, not a secret)
# Characters after TOKEN_START: 8 shown as the prefix, 40 secret; 48 letters and digits
# (about 285 bits) cannot be guessed.
PREFIX_CHARACTERS = 8
SECRET_CHARACTERS = 40
PREFIX_LENGTH = len(TOKEN_START) + PREFIX_CHARACTERS
TOKEN_LENGTH = PREFIX_LENGTH + SECRET_CHARACTERS
ALPHABET = string.ascii_letters + string.digits
NAME_MAX = 100
HASH_SALT = "api.ApiToken.digest"


class TokenError(ValueError):
    """A token could not be made as asked; the message is a sentence for the person."""


def _digest(token: str, key: str) -> str:
    return salted_hmac(HASH_SALT, token, secret=key, algorithm="sha256").hexdigest()


def digest(token: str) -> str:
    """The keyed hash stored for ``token`` (SECRET_KEY, outside the database)."""
    return _digest(token, settings.SECRET_KEY)


def matches(token: str, stored: str) -> bool:
    """Whether ``token`` hashes to ``stored`` under SECRET_KEY or a fallback key (tokens
    survive `rotate_secret_key` while the old key is a fallback)."""
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return any(constant_time_compare(_digest(token, key), stored) for key in keys)


def parse_scopes(value) -> list[str]:
    """Scopes from "chat,models" or a list; TokenError for an unknown or missing one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = sorted({item.strip() for item in items if item.strip()})
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise TokenError(f"{unknown[0]!r} is not a scope; use one or more of {', '.join(SCOPES)}.")
    if not scopes:
        raise TokenError(f"Choose at least one scope: {', '.join(SCOPES)}.")
    return scopes


def _checked_days(days) -> int:
    if days is None:
        days = min(settings.API_TOKEN_DEFAULT_DAYS, settings.API_TOKEN_MAX_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise TokenError("A token must last a whole number of days, at least 1.")
    if days > settings.API_TOKEN_MAX_DAYS:
        raise TokenError(
            f"A token may last at most {settings.API_TOKEN_MAX_DAYS} days on this site; choose "
            "fewer days."
        )
    return days


def has_second_factor(user) -> bool:
    """Whether ``user`` has a confirmed second factor (every token needs one behind it)."""
    return any(True for _ in devices_for_user(user, confirmed=True))


def live_tokens_of(user):
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True)


@transaction.atomic
def create_api_token(
    *,
    actor,
    user,
    name: str,
    days: int | None = None,
    scopes=SCOPES,
    request=None,
    confirmed_with: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns it and its text, which is never stored or shown
    again. TokenError (a sentence) for a bad name, length or scope. ``confirmed_with``: the
    second factor the owner confirmed it with on the token page (totp or passkey)."""
    name = " ".join(str(name).split())
    if not name:
        raise TokenError("Give the token a name, so you can tell it apart later.")
    if len(name) > NAME_MAX:
        raise TokenError(f"A token's name may be at most {NAME_MAX} characters long.")
    if "\x00" in name:
        raise TokenError("A token's name cannot contain a NUL character.")
    days = _checked_days(days)
    scopes = parse_scopes(scopes)
    if live_tokens_of(user).filter(name=name).exists():
        raise TokenError(f"You already have a token named {name!r}; choose another name.")
    text = TOKEN_START + "".join(
        secrets.choice(ALPHABET) for _ in range(TOKEN_LENGTH - len(TOKEN_START))
    )
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user,
                name=name,
                prefix=text[:PREFIX_LENGTH],
                digest=digest(text),
                scopes=",".join(scopes),
                expires_at=timezone.now() + datetime.timedelta(days=days),
            )
    except IntegrityError:
        raise TokenError(f"You already have a token named {name!r}; choose another name.") from None
    record(
        "token.created",
        actor=actor,
        request=request,
        target=token,
        token_id=token.pk,
        owner=user.get_username(),
        name=name,
        scopes=scopes,
        days=days,
        **({"confirmed_with": confirmed_with} if confirmed_with else {}),
    )
    return token, text


@transaction.atomic
def revoke_api_token(*, actor, token: ApiToken, reason: str = "by_owner", request=None) -> bool:
    """End ``token`` now; False when it was already revoked."""
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ):
        return False
    token.refresh_from_db()
    record(
        "token.revoked",
        actor=actor,
        request=request,
        target=token,
        token_id=token.pk,
        owner=token.user.get_username(),
        name=token.name,
        reason=reason,
    )
    return True


@transaction.atomic
def revoke_tokens_of(*, actor, user, reason: str) -> int:
    """End every live token of ``user``; returns how many."""
    return sum(
        revoke_api_token(actor=actor, token=token, reason=reason)
        for token in live_tokens_of(user).select_related("user")
    )


# --- Using a token ------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a presented token was not accepted: ``reason`` for the audit log, ``detail`` for
    the caller."""

    reason: str
    detail: str


MISSING = Refusal(
    "missing_token",
    "This API needs a personal token in the header 'Authorization: Bearer <token>'; make one "
    "on your account page.",
)
UNKNOWN = Refusal(
    "bad_token", "That token is not valid. Check that you copied all of it, or make a new one."
)
REVOKED = Refusal("revoked_token", "That token was revoked. Make a new one on your account page.")
EXPIRED = Refusal("expired_token", "That token has expired. Make a new one on your account page.")
INACTIVE = Refusal("inactive_user", "The account this token belongs to is not active.")


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, value = (header or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


def authenticate(text: str | None, *, source: str, request=None) -> ApiToken | Refusal:
    """The live token ``text`` names, its last use noted; or why it is refused (recorded as
    api.refused, and token.expired the first time an expired token is shown)."""
    token = None
    if text and len(text) == TOKEN_LENGTH and text.startswith(TOKEN_START):
        token = ApiToken.objects.select_related("user").filter(prefix=text[:PREFIX_LENGTH]).first()
        if token is not None and not matches(text, token.digest):
            token = None
    if token is None:
        refusal = MISSING if not text else UNKNOWN
        # Anyone can send a made-up token: rate-limited per address.
        record_probe(
            "api.refused", source=source, outcome="denied", request=request, reason=refusal.reason
        )
        return refusal
    refusal = None
    if token.revoked_at is not None:
        refusal = REVOKED
    elif token.is_expired():
        refusal = EXPIRED
    elif not token.user.is_active:
        refusal = INACTIVE
    if refusal is not None:
        _refuse(token, refusal, request=request)
        return refusal
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now(), last_used_from=source)
    return token


@transaction.atomic
def _refuse(token: ApiToken, refusal: Refusal, *, request) -> None:
    if refusal is EXPIRED and ApiToken.objects.filter(pk=token.pk, expiry_recorded=False).update(
        expiry_recorded=True
    ):
        record(
            "token.expired",
            actor=token.user,
            request=request,
            target=token,
            token_id=token.pk,
            name=token.name,
        )
    record_refusal(token, refusal.reason, request=request)


def record_refusal(token: ApiToken, reason: str, *, request=None, **details) -> None:
    """api.refused for a call made with a known token (out of scope, over a limit, ...)."""
    record(
        "api.refused",
        actor=token.user,
        outcome="denied",
        request=request,
        target=token,
        token_id=token.pk,
        reason=reason,
        **details,
    )


def today() -> datetime.date:
    return timezone.now().astimezone(datetime.UTC).date()


def tokens_used_today(token: ApiToken) -> int:
    totals = ApiUsage.objects.filter(token=token, day=today()).aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
    )
    return (totals["prompt"] or 0) + (totals["completion"] or 0)


@transaction.atomic
def record_call(
    *,
    token: ApiToken,
    endpoint: str,
    model_name: str,
    prompt_tokens: int,
    completion_tokens: int = 0,
    duration_ms: int,
    finish_reason: str = "",
    stream: bool = False,
    request=None,
) -> None:
    """One completed call: counted in the token's usage for today and recorded as
    api.completion (counts and duration, never the text)."""
    usage, _ = ApiUsage.objects.get_or_create(
        token=token, day=today(), model_name=model_name[:200], defaults={"user": token.user}
    )
    ApiUsage.objects.filter(pk=usage.pk).update(
        requests=F("requests") + 1,
        prompt_tokens=F("prompt_tokens") + prompt_tokens,
        completion_tokens=F("completion_tokens") + completion_tokens,
    )
    record(
        "api.completion",
        actor=token.user,
        request=request,
        target=token,
        token_id=token.pk,
        endpoint=endpoint,
        model=model_name,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        duration_ms=duration_ms,
        finish_reason=finish_reason,
        stream=stream,
    )
