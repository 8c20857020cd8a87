"""Every change to accounts, second factors and sign-in sessions goes through here.

Each function is atomic and writes its audit event in the same transaction.
"""

import logging
import time
from dataclasses import dataclass

import django_otp
from asgiref.sync import async_to_sync
from axes.utils import reset as reset_sign_in_failures
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import roles, signals
from accounts.models import BackupCodeDevice, SignInSession, TOTPDevice
from audit.log import record

logger = logging.getLogger(__name__)

SIGNED_IN_AT_KEY = "signed_in_at"


def user_group(user_id: int) -> str:
    """The channel-layer group of a user's open websockets."""
    return f"user.{user_id}"


def confirmed_totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def backup_device(user) -> BackupCodeDevice | None:
    return BackupCodeDevice.objects.filter(user=user).first()


# --- Sign-in sessions ---------------------------------------------------------------------


def note_sign_in(request, user) -> None:
    """Remember the session of a password sign-in, so it can be ended from elsewhere."""
    request.session[SIGNED_IN_AT_KEY] = timezone.now().timestamp()
    if request.session.session_key is None:
        request.session.save()
    SignInSession.objects.update_or_create(
        session_key=request.session.session_key, defaults={"user": user}
    )


def sign_in_is_recent(request) -> bool:
    """Whether this session's password sign-in is at most SESSION_ENROLMENT_WINDOW old."""
    signed_in_at = request.session.get(SIGNED_IN_AT_KEY)
    return (
        signed_in_at is not None and time.time() - signed_in_at <= settings.SESSION_ENROLMENT_WINDOW
    )


def end_all_sessions(user, *, keep_session_key: str | None = None) -> int:
    """End every browser session of ``user`` (but ``keep_session_key``) and close their
    websockets. Returns how many sessions ended."""
    sessions = SignInSession.objects.filter(user=user)
    if keep_session_key:
        sessions = sessions.exclude(session_key=keep_session_key)
    keys = list(sessions.values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=keys).delete()
    sessions.delete()
    transaction.on_commit(lambda: _close_websockets(user.pk, keep_session_key))
    return len(keys)


def _close_websockets(user_id: int, keep_session_key: str | None) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            user_group(user_id),
            {"type": "session.revoked", "keep_session_key": keep_session_key},
        )
    except Exception:
        # Open sockets also re-check their session every SESSION_RECHECK_SECONDS.
        logger.exception("Could not tell the websockets of user %s to close", user_id)


# --- Second factor --------------------------------------------------------------------------


def start_enrolment(user) -> TOTPDevice:
    """The user's unconfirmed authenticator device, created on first use."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def _new_backup_codes(user) -> list[str]:
    device, _ = BackupCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "Backup codes", "confirmed": True}
    )
    codes = device.replace_codes()
    record("backup_codes.generated", actor=user, target=user, count=len(codes))
    return codes


@transaction.atomic
def confirm_enrolment(*, actor, device: TOTPDevice) -> list[str]:
    """Confirm an authenticator device whose first code was right; returns fresh backup codes."""
    TOTPDevice.objects.filter(user=actor).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    record("device.enrolled", actor=actor, target=actor, device="totp")
    return _new_backup_codes(actor)


@transaction.atomic
def regenerate_backup_codes(*, actor) -> list[str]:
    return _new_backup_codes(actor)


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str = ""
    wait_seconds: int = 0


def _wait_seconds(device) -> int:
    """How long ``device`` refuses codes from every session (accounts.models)."""
    allowed, data = device.verify_is_allowed()
    if allowed or not data or "locked_until" not in data:
        return 0
    return max(1, _seconds_until(data["locked_until"].timestamp()))


def _seconds_until(moment: float) -> int:
    return max(0, int(moment - time.time() + 0.999))


def _session_failures_key(request, device) -> str:
    if request.session.session_key is None:
        request.session.save()
    return f"otp-failures:{request.session.session_key}:{device.persistent_id}"


def _session_wait_seconds(request, device) -> int:
    """How long this session waits before its next code for ``device``: django-otp's
    doubling (OTP_TOTP_THROTTLE_FACTOR * 2^(n-1) seconds after the n-th wrong code), counted
    for this session only, so wrong codes in someone else's session never hold it back."""
    failures = cache.get(_session_failures_key(request, device))
    if not failures:
        return 0
    delay = settings.OTP_TOTP_THROTTLE_FACTOR * 2 ** (failures["count"] - 1)
    return _seconds_until(failures["at"] + delay)


def _note_session_failure(request, device) -> None:
    key = _session_failures_key(request, device)
    failures = cache.get(key) or {"count": 0}
    failures = {"count": failures["count"] + 1, "at": time.time()}
    # Kept as long as the session itself can live.
    cache.set(key, failures, timeout=settings.SESSION_ABSOLUTE_LIFETIME)


def _forget_session_failures(request, device) -> None:
    cache.delete(_session_failures_key(request, device))


def mark_verified(request, device) -> None:
    """Record in the session that ``device`` verified its user, under a new session key
    (its sign-in record follows the key: accounts.sessions)."""
    django_otp.login(request, device)
    request.session.cycle_key()


WRONG_CODE = (
    "That code is not right, or it was already used. Wait for the next code in your app "
    "and try again."
)


def check_code(request, device, code: str, *, kind: str) -> Verification:
    """Check ``code`` against ``device`` under this session's throttle and the device's own
    (across all sessions); records otp.throttled or otp.failure when it is refused."""
    user = request.user
    wait = max(_session_wait_seconds(request, device), _wait_seconds(device))
    if wait:
        record("otp.throttled", outcome="denied", request=request, target=user, wait=wait)
        seconds = "1 second" if wait == 1 else f"{wait} seconds"
        return Verification(False, f"Too many wrong codes. Wait {seconds}, then try again.", wait)
    if not device.verify_token(code):
        _note_session_failure(request, device)
        record("otp.failure", outcome="failure", request=request, target=user, kind=kind)
        wait = max(_session_wait_seconds(request, device), _wait_seconds(device))
        return Verification(False, WRONG_CODE, wait)
    _forget_session_failures(request, device)
    return Verification(True)


@transaction.atomic
def verify_second_factor(request, code: str) -> Verification:
    """Check a code from the authenticator app or a backup code, and mark the session
    verified when it is right. Records otp.success / backup_code.used / otp.failure /
    otp.throttled."""
    user = request.user
    is_totp = code.replace(" ", "").isdigit()
    device = confirmed_totp_device(user) if is_totp else backup_device(user)
    if device is None:
        record("otp.failure", outcome="failure", request=request, target=user, kind="backup")
        return Verification(False, WRONG_CODE)
    result = check_code(request, device, code, kind="totp" if is_totp else "backup")
    if not result.ok:
        return result
    mark_verified(request, device)
    if is_totp:
        record("otp.success", request=request, target=user, device="totp")
    else:
        record(
            "backup_code.used", request=request, target=user, backup_codes_left=device.codes_left()
        )
    return result


# --- Administration -------------------------------------------------------------------------


@transaction.atomic
def reset_two_factor(*, actor, user, reason: str) -> None:
    """Remove a user's devices; they enrol again at their next sign-in."""
    removed = TOTPDevice.objects.filter(user=user).count()
    TOTPDevice.objects.filter(user=user).delete()
    BackupCodeDevice.objects.filter(user=user).delete()
    ended = end_all_sessions(user)
    record(
        "device.reset_by_admin",
        actor=actor,
        target=user,
        reason=reason[:500],
        devices_removed=removed,
        sessions_ended=ended,
    )
    signals.second_factor_reset.send(sender=reset_two_factor, actor=actor, user=user)


@transaction.atomic
def deactivate_user(*, actor, user) -> None:
    """Stop a user signing in and end their sessions; the audit receiver records it."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    end_all_sessions(user)
    signals.user_deactivated.send(sender=deactivate_user, actor=actor, user=user)


@transaction.atomic
def unlock_sign_in(*, actor, user) -> int:
    """Clear the failed sign-ins that pause ``user``'s username (from any address), so the
    owner can sign in at once. Returns how many failure records were cleared."""
    cleared = reset_sign_in_failures(username=user.get_username())
    record("lockout.cleared", actor=actor, target=user, failure_records_cleared=cleared)
    return cleared


@transaction.atomic
def password_changed(*, actor, request) -> None:
    """After a password change: end every other session of the user."""
    end_all_sessions(actor, keep_session_key=request.session.session_key)


@transaction.atomic
def create_user(*, username: str, password: str, email: str = "", admin=False, compliance=False):
    """A new account in Employees (and Admins / Compliance, which make it a staff account)."""
    user_model = get_user_model()
    user = user_model(username=username, email=email, is_staff=admin or compliance)
    user.set_password(password)
    user.save()
    groups = [roles.EMPLOYEES]
    if admin:
        groups.append(roles.ADMINS)
    if compliance:
        groups.append(roles.COMPLIANCE)
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user
