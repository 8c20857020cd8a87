"""Sign-in with the company directory (LDAP / Active Directory), its state for /healthz and
/metrics, and the look-ups ``sync_directory`` makes.

``DirectoryBackend`` is django-auth-ldap's backend with this project's rules:
- a local account (one without a ``DirectoryAccount``) never signs in through the directory,
  so a directory entry with the same name cannot take it over;
- the user's role groups come from AUTH_LDAP_EMPLOYEES_GROUP / _COMPLIANCE_GROUP /
  _ADMINS_GROUP (nested membership resolved) at every sign-in; someone in none of them is
  refused before any account is made;
- every sign-in binds to the directory live (nothing cached), so a disabled or deleted
  entry cannot start a session;
- when the directory cannot be reached (or its certificate is refused), the attempt says so
  on the request (``request.sign_in_failure``) for the sign-in form and the audit log, and
  the directory's state is noted for /healthz and /metrics.
The second factor follows as for everyone: this backend only replaces the password check.
"""

import contextvars
import logging
import time
from dataclasses import dataclass, field

import ldap
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.dispatch import receiver
from django_auth_ldap.backend import LDAPBackend, ldap_error
from prometheus_client import Gauge

from accounts import lockout, roles, services
from accounts.models import DirectoryAccount

logger = logging.getLogger(__name__)

DIRECTORY_UP = Gauge(
    "llmchat_directory_up",
    "1 when the company directory (source=ldap) or identity provider (source=oidc) answered "
    "its latest check, 0 when it did not; absent when none is configured.",
    ["source"],
)
# /healthz and /metrics ask the directory again when its state is older than this; sign-ins
# refresh it as they happen.
STATUS_MAX_AGE_SECONDS = 30
_STATUS_KEY = "directory.status.{source}"

# Why a directory sign-in was refused, as request.sign_in_failure["reason"] and the audit
# log's login.failure say it.
UNAVAILABLE = lockout.DIRECTORY_UNAVAILABLE
NO_ROLE = "no_role"
PASSWORD_REFUSED = "password_refused"  # noqa: S105 (a reason, not a password)


def ldap_configured() -> bool:
    return bool(getattr(settings, "AUTH_LDAP_SERVER_URI", ""))


class DirectoryUnavailable(Exception):
    """The directory did not answer, or its certificate was refused."""


def describe_error(exc: Exception) -> str:
    """One line for the log, /healthz and the audit log: the directory's own words."""
    if isinstance(exc, ldap.LDAPError) and exc.args and isinstance(exc.args[0], dict):
        info = exc.args[0]
        text = info.get("desc", type(exc).__name__)
        if info.get("info"):
            text = f"{text} ({info['info']})"
        return text[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


# --- State for /healthz and /metrics ----------------------------------------------------------


def note_status(source: str, ok: bool, error: str = "") -> None:
    DIRECTORY_UP.labels(source).set(1 if ok else 0)
    try:
        cache.set(
            _STATUS_KEY.format(source=source),
            {"ok": ok, "error": error, "checked_at": time.time()},
            timeout=None,
        )
    except Exception:
        # The shared cache being down is /healthz's news already.
        logger.warning("Could not store the directory's state in the cache", exc_info=True)


def cached_status(source: str) -> dict | None:
    try:
        return cache.get(_STATUS_KEY.format(source=source))
    except Exception:
        return None


def ldap_status() -> dict | None:
    """{"ok", "error", "checked_at"} for the LDAP directory, at most STATUS_MAX_AGE_SECONDS
    old (asking the directory when it is older); None when none is configured."""
    if not ldap_configured():
        return None
    status = cached_status("ldap")
    if is_stale(status):
        try:
            DirectoryConnection().close()
        except DirectoryUnavailable as exc:
            note_status("ldap", False, str(exc))
        else:
            note_status("ldap", True)
        status = cached_status("ldap") or {"ok": False, "error": "no state", "checked_at": 0}
    return status


def _ldap_up() -> float:
    status = ldap_status()
    return float(bool(status and status["ok"]))


def is_stale(status: dict | None) -> bool:
    return status is None or time.time() - status["checked_at"] > STATUS_MAX_AGE_SECONDS


def register_metrics() -> None:
    """Let /metrics read the directory's and the identity provider's state at each scrape
    (accounts.apps calls this)."""
    if ldap_configured():
        DIRECTORY_UP.labels("ldap").set_function(_ldap_up)
    if getattr(settings, "OIDC_OP_ISSUER", ""):
        from accounts.oidc import provider_up

        DIRECTORY_UP.labels("oidc").set_function(provider_up)


# --- Roles ------------------------------------------------------------------------------------


def role_groups() -> dict[str, str]:
    """Directory group DN (lower case) -> the project's role group it gives."""
    mapping = {
        settings.AUTH_LDAP_EMPLOYEES_GROUP: roles.EMPLOYEES,
        getattr(settings, "AUTH_LDAP_COMPLIANCE_GROUP", None): roles.COMPLIANCE,
        getattr(settings, "AUTH_LDAP_ADMINS_GROUP", None): roles.ADMINS,
    }
    return {dn: role for dn, role in mapping.items() if dn}


def roles_for(group_dns) -> frozenset[str]:
    """The role groups that membership of ``group_dns`` (nested membership resolved) gives."""
    member_of = {dn.lower() for dn in group_dns}
    return frozenset(role for dn, role in role_groups().items() if dn in member_of)


# --- Sign-in ----------------------------------------------------------------------------------


@dataclass
class _Attempt:
    errors: list[Exception] = field(default_factory=list)
    refusal: str = ""
    roles: frozenset[str] = frozenset()


_attempt: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "directory_attempt", default=None
)


@receiver(ldap_error, dispatch_uid="accounts_directory_ldap_error")
def _collect_error(sender, context, exception, **kwargs):
    attempt = _attempt.get()
    if attempt is not None:
        attempt.errors.append(exception)


def _refuse(request, reason: str, **details) -> None:
    if request is not None:
        request.sign_in_failure = {"backend": "ldap", "reason": reason, **details}


def is_local_account(user) -> bool:
    return not DirectoryAccount.objects.filter(
        user=user, source=DirectoryAccount.Source.LDAP
    ).exists()


class DirectoryBackend(LDAPBackend):
    """django-auth-ldap's backend with the project's rules (see the module docstring)."""

    sign_in_source = "ldap"

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not ldap_configured() or not username or not password:
            return None
        username = username.strip()
        existing = get_user_model().objects.filter(username__iexact=username).first()
        if existing is not None and is_local_account(existing):
            return None
        attempt = _Attempt()
        token = _attempt.set(attempt)
        try:
            user = super().authenticate(request, username=username, password=password)
        finally:
            _attempt.reset(token)
        if attempt.errors:
            error = describe_error(attempt.errors[0])
            logger.error(
                "The directory at %s refused or did not answer a sign-in: %s. Directory "
                "accounts cannot sign in until it answers; local accounts still can.",
                settings.AUTH_LDAP_SERVER_URI,
                error,
            )
            note_status("ldap", False, error)
            _refuse(request, UNAVAILABLE, error=error)
            return None
        note_status("ldap", True)
        if user is None:
            _refuse(request, attempt.refusal or PASSWORD_REFUSED)
            return None
        services.directory_signed_in(
            user=user,
            source=DirectoryAccount.Source.LDAP,
            subject=user.ldap_user.dn,
            role_groups=attempt.roles,
        )
        return user

    def get_or_build_user(self, username, ldap_user):
        """Called once the directory accepted the password: refuse someone in no mapped
        group before an account is made for them."""
        attempt = _attempt.get()
        granted = roles_for(ldap_user.group_dns)
        if not granted:
            if attempt is not None:
                attempt.refusal = NO_ROLE
            raise type(ldap_user).AuthenticationFailed("in no group that gives a role")
        user, built = super().get_or_build_user(username, ldap_user)
        if not built and is_local_account(user):
            raise type(ldap_user).AuthenticationFailed("a local account has this username")
        if attempt is not None:
            attempt.roles = granted
        return user, built

    def get_user(self, user_id):
        # Sessions are loaded without asking the directory (ModelBackend's way); leavers are
        # removed by sync_directory, which ends their sessions.
        try:
            return get_user_model().objects.get(pk=user_id)
        except get_user_model().DoesNotExist:
            return None

    def get_group_permissions(self, user, obj=None):
        # Permissions come from the role groups this backend sets, through ModelBackend.
        return set()


# --- Look-ups without a password (sync_directory, /healthz) ----------------------------------


@dataclass(frozen=True)
class DirectoryEntry:
    """What the directory says about one username now."""

    dn: str
    role_groups: frozenset[str]


class DirectoryConnection:
    """A connection bound as AUTH_LDAP_BIND_DN, with the same TLS rules as sign-in. Raises
    DirectoryUnavailable for every failure to reach or trust the directory, so a look-up
    never mistakes an outage for "this person is gone"."""

    def __init__(self):
        try:
            self.connection = ldap.initialize(settings.AUTH_LDAP_SERVER_URI, bytes_mode=False)
            for option, value in settings.AUTH_LDAP_CONNECTION_OPTIONS.items():
                self.connection.set_option(option, value)
            if settings.AUTH_LDAP_START_TLS:
                self.connection.start_tls_s()
            self.connection.simple_bind_s(
                settings.AUTH_LDAP_BIND_DN, settings.AUTH_LDAP_BIND_PASSWORD
            )
        except ldap.LDAPError as exc:
            raise DirectoryUnavailable(describe_error(exc)) from exc

    def close(self) -> None:
        self.connection.unbind_s()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def lookup(self, username: str) -> DirectoryEntry | None:
        """The entry the sign-in filter finds for ``username`` (None: disabled or deleted)."""
        try:
            found = settings.AUTH_LDAP_USER_SEARCH.execute(self.connection, {"user": username})
            if len(found) != 1:
                return None
            dn = found[0][0]
            groups = settings.AUTH_LDAP_GROUP_TYPE.user_groups(
                _BoundEntry(dn, self.connection), settings.AUTH_LDAP_GROUP_SEARCH
            )
        except ldap.LDAPError as exc:
            raise DirectoryUnavailable(describe_error(exc)) from exc
        return DirectoryEntry(dn=dn, role_groups=roles_for(info[0] for info in groups))

    def exists(self, dn: str) -> bool:
        """Whether the entry ``dn`` is still in the directory (the filter may leave it out)."""
        try:
            self.connection.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
        except ldap.NO_SUCH_OBJECT:
            return False
        except ldap.LDAPError as exc:
            raise DirectoryUnavailable(describe_error(exc)) from exc
        return True


@dataclass(frozen=True)
class _BoundEntry:
    """What django-auth-ldap's group types read from a user: the DN and a bound connection."""

    dn: str
    connection: object
