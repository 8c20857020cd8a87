"""django-axes hooks: which address a sign-in comes from, the limit per username across all
addresses, and the page a locked-out user sees."""

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

# accounts.directory's reason for an attempt the directory could not answer.
DIRECTORY_UNAVAILABLE = "directory_unavailable"

# Which limit paused a sign-in, as the audit log's lockout event names it.
ADDRESS_LIMIT = "username_and_address"
ACCOUNT_LIMIT = "username"


def client_ip(request) -> str:
    """The client address project.network decided on (behind a trusted proxy: the client's)."""
    return request.META.get("REMOTE_ADDR", "")


def account_failures(request, username) -> int:
    """Failed passwords for ``username`` from every address within the cool-off."""
    if not username:
        return 0
    attempts = AccessAttempt.objects.filter(
        username=username, attempt_time__gte=get_cool_off_threshold(request)
    )
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def limit_reached(request, username) -> str:
    """The limit that pauses ``username`` on this request: the per-address one first."""
    credentials = {settings.AXES_USERNAME_FORM_FIELD: username} if username else None
    failures = SignInLockoutHandler().get_failures(request, credentials)
    return ADDRESS_LIMIT if failures >= get_failure_limit(request, credentials) else ACCOUNT_LIMIT


class SignInLockoutHandler(AxesDatabaseHandler):
    """axes' database handler (AXES_FAILURE_LIMIT per username and address), plus
    ACCOUNT_LOCKOUT_FAILURE_LIMIT per username across all addresses, counted from the same
    failure records, so that guessing spread over many addresses is paused too."""

    def is_locked(self, request, credentials=None) -> bool:
        if super().is_locked(request, credentials):
            return True
        username = get_client_username(request, credentials)
        return account_failures(request, username) >= settings.ACCOUNT_LOCKOUT_FAILURE_LIMIT

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        failure = getattr(request, "sign_in_failure", None) or {}
        if failure.get("reason") == DIRECTORY_UNAVAILABLE or failure.get("backend") == "oidc":
            # Nobody's password was checked here (an outage; or the identity provider, which
            # has its own lockout, refused): neither may lock an office's address out.
            return
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or request.axes_locked_out:
            return
        username = get_client_username(request, credentials)
        if account_failures(request, username) >= settings.ACCOUNT_LOCKOUT_FAILURE_LIMIT:
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes", request=request, username=username, ip_address=request.axes_ip_address
            )


def locked_out_response(request, original_response=None, credentials=None):
    cool_off = get_cool_off(request)
    retry_at = timezone.localtime(timezone.now() + cool_off) if cool_off else None
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    username = get_client_username(request, credentials)
    return render(
        request,
        "accounts/locked_out.html",
        {
            "retry_at": retry_at,
            "minutes": minutes,
            "whole_account": limit_reached(request, username) == ACCOUNT_LIMIT,
        },
        status=429,
    )
