"""Every page needs a password and a second factor; sessions end when they get too old."""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect

from accounts.services import SIGNED_IN_AT_KEY, confirmed_totp_device, note_activity

# Reachable without signing in: the sign-in pages (the admin's only redirects to ours),
# health and liveness probes, static files.
PUBLIC_PREFIXES = (
    "/accounts/login/",
    "/accounts/oidc/",
    "/admin/login/",
    "/healthz",
    "/livez",
    "/static/",
    "/favicon.ico",
)
# Reachable after the password, before the second factor.
HALF_SIGNED_IN_PREFIXES = (
    "/accounts/verify/",
    "/accounts/enrol/",
    "/accounts/logout/",
    # Using a passkey at the verify step (accounts.passkeys), and its script's translations.
    "/accounts/passkeys/authentication/",
    "/accounts/passkeys/jsi18n/",
)


def _with_next(url: str, request) -> str:
    target = request.get_full_path()
    return f"{url}?{urlencode({'next': target})}" if target != "/" else url


class SessionLifetimeMiddleware:
    """Sign out sessions older than SESSION_ABSOLUTE_LIFETIME, however active they are, and
    note the last activity of the others for the sessions page.

    The idle timeout is the session cookie's sliding age (SESSION_COOKIE_AGE with
    SESSION_SAVE_EVERY_REQUEST).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        signed_in_at = request.session.get(SIGNED_IN_AT_KEY)
        if (
            signed_in_at is not None
            and request.user.is_authenticated
            and time.time() - signed_in_at > settings.SESSION_ABSOLUTE_LIFETIME
        ):
            logout(request)
            messages.info(request, "Your session has ended. Sign in again to continue.")
            return redirect(_with_next(settings.LOGIN_URL, request))
        if request.user.is_authenticated:
            note_activity(request)
        return self.get_response(request)


class RequireTwoFactorMiddleware:
    """Send anyone without a verified second factor to sign-in, verification or enrolment."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        user = request.user
        if not user.is_authenticated:
            return redirect(_with_next(settings.LOGIN_URL, request))
        if user.is_verified():
            return self.get_response(request)
        if path.startswith(HALF_SIGNED_IN_PREFIXES):
            return self.get_response(request)
        destination = "/accounts/verify/" if confirmed_totp_device(user) else "/accounts/enrol/"
        return redirect(_with_next(destination, request))
