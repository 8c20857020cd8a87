"""Every change to accounts, second factors and sign-in sessions goes through here.

Each function is atomic and writes its audit event in the same transaction.
"""

import ipaddress
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
from django_otp_webauthn.models import WebAuthnCredential

from accounts import roles, signals
from accounts.models import (
    BackupCodeDevice,
    DirectoryAccount,
    SignInSession,
    TOTPDevice,
    hashed_session_key,
)
from audit.log import record
from core.labels import one_line_label

logger = logging.getLogger(__name__)

SIGNED_IN_AT_KEY = "signed_in_at"
# When this session's user last proved a second factor (sign-in or step-up), Unix time.
SECOND_FACTOR_AT_KEY = "second_factor_at"


def user_group(user_id: int) -> str:
    """The channel-layer group of a user's open websockets."""
    return f"user.{user_id}"


def confirmed_totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def backup_device(user) -> BackupCodeDevice | None:
    return BackupCodeDevice.objects.filter(user=user).first()


# --- Sign-in sessions ---------------------------------------------------------------------

# Last activity is noted at most once a minute per session: the sessions page shows it to
# the minute, and a write on every request would double the database writes of the chat page.
ACTIVITY_RESOLUTION_SECONDS = 60
ACTIVITY_NOTED_KEY = "activity_noted_at"


def _client_address(request) -> str | None:
    """The request's address (core.network has already replaced a trusted proxy's address
    with the one it forwarded for), or None when it is not an IP address."""
    try:
        return str(ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")))
    except ValueError:
        return None


def current_session_hash(request) -> str | None:
    key = request.session.session_key
    return hashed_session_key(key) if key else None


def note_sign_in(request, user) -> None:
    """Remember the session of a password sign-in, so its owner sees it and it can be ended
    from elsewhere."""
    now = timezone.now()
    request.session[SIGNED_IN_AT_KEY] = now.timestamp()
    request.session[ACTIVITY_NOTED_KEY] = now.timestamp()
    if request.session.session_key is None:
        request.session.save()
    SignInSession.objects.update_or_create(
        key_hash=hashed_session_key(request.session.session_key),
        defaults={
            "user": user,
            "started_at": now,
            "last_seen_at": now,
            "ip_address": _client_address(request),
            "user_agent": request.META.get("HTTP_USER_AGENT", "")[:500],
        },
    )


def note_activity(request) -> None:
    """Note the time and address of a signed-in session's request on its sign-in record, at
    most once every ACTIVITY_RESOLUTION_SECONDS."""
    session = request.session
    noted_at = session.get(ACTIVITY_NOTED_KEY, 0)
    if session.session_key is None or time.time() - noted_at < ACTIVITY_RESOLUTION_SECONDS:
        return
    session[ACTIVITY_NOTED_KEY] = time.time()
    SignInSession.objects.filter(key_hash=hashed_session_key(session.session_key)).update(
        last_seen_at=timezone.now(), ip_address=_client_address(request)
    )


def sign_in_is_recent(request) -> bool:
    """Whether this session's password sign-in is at most SESSION_ENROLMENT_WINDOW old."""
    signed_in_at = request.session.get(SIGNED_IN_AT_KEY)
    return (
        signed_in_at is not None and time.time() - signed_in_at <= settings.SESSION_ENROLMENT_WINDOW
    )


def sessions_of(user) -> list[SignInSession]:
    """The signed-in sessions of ``user``, most recently active first."""
    return list(SignInSession.objects.filter(user=user, user__is_active=True))


def is_current_session(request, session_id: int) -> bool:
    return SignInSession.objects.filter(
        pk=session_id, key_hash=current_session_hash(request) or ""
    ).exists()


def _end(sessions, *, actor, user, reason: str) -> int:
    """End ``sessions`` (SignInSession rows of ``user``): delete their Django sessions and
    records, audit session.ended, and close their websockets once the transaction commits."""
    ended = list(sessions.values_list("pk", "key_hash"))
    if not ended:
        return 0
    hashes = [key_hash for _, key_hash in ended]
    Session.objects.filter(session_key__in=hashes).delete()
    SignInSession.objects.filter(pk__in=[pk for pk, _ in ended]).delete()
    record(
        "session.ended",
        actor=actor,
        target=user,
        sessions=[pk for pk, _ in ended],
        count=len(ended),
        reason=reason,
    )
    transaction.on_commit(lambda: _close_websockets(user.pk, hashes))
    return len(ended)


@transaction.atomic
def end_session(*, actor, user, session_id: int) -> bool:
    """End one session of ``user`` (the owner's choice on the sessions page, or an admin's).
    False when ``user`` has no such session (it ended already, or it is someone else's)."""
    sessions = SignInSession.objects.filter(user=user, pk=session_id)
    reason = "by_owner" if actor.pk == user.pk else "by_admin"
    return _end(sessions, actor=actor, user=user, reason=reason) == 1


@transaction.atomic
def end_other_sessions(*, actor, request) -> int:
    """End every session of the signed-in user but the one making ``request``."""
    sessions = SignInSession.objects.filter(user=actor).exclude(
        key_hash=current_session_hash(request) or ""
    )
    return _end(sessions, actor=actor, user=actor, reason="by_owner")


def end_all_sessions(
    user, *, keep_session_key: str | None = None, actor=None, reason: str = "by_admin"
) -> int:
    """End every browser session of ``user`` (but ``keep_session_key``) and close their
    websockets. Returns how many sessions ended."""
    sessions = SignInSession.objects.filter(user=user)
    if keep_session_key:
        sessions = sessions.exclude(key_hash=hashed_session_key(keep_session_key))
    return _end(sessions, actor=actor, user=user, reason=reason)


def _close_websockets(user_id: int, ended_hashes: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            user_group(user_id), {"type": "session.revoked", "sessions": ended_hashes}
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
    return f"otp-failures:{current_session_hash(request)}:{device.persistent_id}"


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
    """Record in the session that ``device`` verified its user, and when (for step-up),
    under a new session key (its sign-in record follows the key: accounts.sessions)."""
    django_otp.login(request, device)
    request.session[SECOND_FACTOR_AT_KEY] = time.time()
    request.session.cycle_key()


def second_factor_is_fresh(request) -> bool:
    """Whether this session's user proved a second factor within the last STEP_UP_SECONDS
    (accounts.step_up)."""
    at = request.session.get(SECOND_FACTOR_AT_KEY)
    return (
        request.user.is_verified()
        and at is not None
        and 0 <= time.time() - at <= settings.STEP_UP_SECONDS
    )


WRONG_CODE = (
    "That code is not right, or it was already used. Wait for the next code in your app "
    "and try again."
)


def check_code(request, device, code: str, *, kind: str, **purpose) -> Verification:
    """Check ``code`` against ``device`` under this session's throttle and the device's own
    (across all sessions); records otp.throttled or otp.failure when it is refused."""
    user = request.user
    wait = max(_session_wait_seconds(request, device), _wait_seconds(device))
    if wait:
        record(
            "otp.throttled", outcome="denied", request=request, target=user, wait=wait, **purpose
        )
        seconds = "1 second" if wait == 1 else f"{wait} seconds"
        return Verification(False, f"Too many wrong codes. Wait {seconds}, then try again.", wait)
    if not device.verify_token(code):
        _note_session_failure(request, device)
        record("otp.failure", outcome="failure", request=request, target=user, kind=kind, **purpose)
        wait = max(_session_wait_seconds(request, device), _wait_seconds(device))
        return Verification(False, WRONG_CODE, wait)
    _forget_session_failures(request, device)
    return Verification(True)


@transaction.atomic
def verify_second_factor(request, code: str, *, step_up: bool = False) -> Verification:
    """Check a code from the authenticator app or a backup code, and mark the session
    verified when it is right. Records otp.success / backup_code.used / otp.failure /
    otp.throttled; with ``step_up`` (a verified user confirming an action,
    accounts.step_up) their details say so."""
    user = request.user
    purpose = {"step_up": True} if step_up else {}
    is_totp = code.replace(" ", "").isdigit()
    device = confirmed_totp_device(user) if is_totp else backup_device(user)
    if device is None:
        record(
            "otp.failure", outcome="failure", request=request, target=user, kind="backup", **purpose
        )
        return Verification(False, WRONG_CODE)
    result = check_code(request, device, code, kind="totp" if is_totp else "backup", **purpose)
    if not result.ok:
        return result
    mark_verified(request, device)
    if is_totp:
        record("otp.success", request=request, target=user, device="totp", **purpose)
    else:
        record(
            "backup_code.used",
            request=request,
            target=user,
            backup_codes_left=device.codes_left(),
            **purpose,
        )
    return result


# --- Passkeys (the ceremonies are in accounts.passkeys) ---------------------------------------

PASSKEY_NAME_MAX = 60


def passkeys_of(user) -> list[WebAuthnCredential]:
    return list(WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at"))


def has_passkeys(user) -> bool:
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).exists()


def clean_passkey_name(name: str) -> str:
    """The name a person gives a passkey, on one line; ValueError says what is wrong."""
    name = one_line_label(name)
    if not name:
        raise ValueError("Give the passkey a name, such as “work laptop” or “YubiKey”.")
    if len(name) > PASSKEY_NAME_MAX:
        raise ValueError(f"Keep the name under {PASSKEY_NAME_MAX + 1} characters.")
    return name


def passkey_registered(request, credential) -> None:
    """Audit a passkey the signed-in user just registered (the library saved it)."""
    record(
        "passkey.registered",
        request=request,
        target=request.user,
        passkey=credential.pk,
        name=credential.name,
        passkeys=WebAuthnCredential.objects.filter(user=request.user, confirmed=True).count(),
    )


@transaction.atomic
def passkey_used(request, device) -> None:
    """A passkey proved the second factor: verify the session (sign-in or step-up)."""
    step_up = {"step_up": True} if request.user.is_verified() else {}
    mark_verified(request, device)
    _record_passkey_use(request, device, **step_up)


def passkey_confirmed(request, device, *, purpose: str) -> None:
    """A passkey confirmed one action (``purpose``, e.g. api_token) for a signed-in user; the
    session is left as it was (accounts.passkeys.check_action_assertion)."""
    _record_passkey_use(request, device, step_up=True, purpose=purpose)


def _record_passkey_use(request, device, **details) -> None:
    record(
        "passkey.used",
        request=request,
        target=request.user,
        passkey=device.pk,
        sign_count=device.sign_count,
        **details,
    )


def passkey_failed(request, *, ceremony: str, reason: str) -> None:
    user = request.user if request.user.is_authenticated else None
    record(
        "passkey.failed",
        outcome="failure",
        request=request,
        target=user,
        ceremony=ceremony,
        reason=reason,
    )


LAST_FACTOR = (
    "That is your only second factor, so it cannot be removed. Add another passkey or an "
    "authenticator app first."
)


@transaction.atomic
def remove_passkey(*, actor, passkey_id: int) -> str:
    """Remove one of ``actor``'s passkeys, unless it is their last second factor (backup
    codes do not count: they are for when the others are lost). Returns "" when removed,
    else a sentence saying why not."""
    passkey = (
        WebAuthnCredential.objects.select_for_update()
        .filter(user=actor, pk=passkey_id, confirmed=True)
        .first()
    )
    if passkey is None:
        return "That passkey was already removed."
    others = WebAuthnCredential.objects.filter(user=actor, confirmed=True).exclude(pk=passkey.pk)
    if not others.exists() and confirmed_totp_device(actor) is None:
        return LAST_FACTOR
    record("passkey.removed", actor=actor, target=actor, passkey=passkey.pk, name=passkey.name)
    passkey.delete()
    return ""


# --- Administration -------------------------------------------------------------------------


@transaction.atomic
def reset_two_factor(*, actor, user, reason: str) -> None:
    """Remove a user's devices (authenticator app, backup codes, passkeys); they enrol again
    at their next sign-in."""
    removed = TOTPDevice.objects.filter(user=user).count()
    TOTPDevice.objects.filter(user=user).delete()
    BackupCodeDevice.objects.filter(user=user).delete()
    passkeys = WebAuthnCredential.objects.filter(user=user)
    passkeys_removed = passkeys.count()
    passkeys.delete()
    ended = end_all_sessions(user, actor=actor, reason="two_factor_reset")
    record(
        "device.reset_by_admin",
        actor=actor,
        target=user,
        reason=reason[:500],
        devices_removed=removed,
        passkeys_removed=passkeys_removed,
        sessions_ended=ended,
    )
    signals.second_factor_reset.send(sender=reset_two_factor, actor=actor, user=user)


@transaction.atomic
def deactivate_user(*, actor, user) -> None:
    """Stop a user signing in and end their sessions; the audit receiver records it."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    end_all_sessions(user, actor=actor, reason="deactivated")
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
    end_all_sessions(
        actor, keep_session_key=request.session.session_key, actor=actor, reason="password_changed"
    )


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


# --- Directory accounts (LDAP / Active Directory, OpenID Connect) -----------------------------


def _set_role_groups(user, role_groups: frozenset[str]) -> tuple[list[str], list[str]] | None:
    """Give ``user`` exactly ``role_groups`` among the role groups (other groups stay), and
    the staff flag the Admins and Compliance roles need; returns (before, after) when
    anything changed."""
    before = set(user.groups.filter(name__in=roles.ROLES).values_list("name", flat=True))
    wanted = set(role_groups)
    staff = bool(wanted & {roles.ADMINS, roles.COMPLIANCE})
    if before == wanted and user.is_staff == staff:
        return None
    if before - wanted:
        user.groups.remove(*Group.objects.filter(name__in=before - wanted))
    if wanted - before:
        user.groups.add(*Group.objects.filter(name__in=wanted - before))
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])
    return sorted(before), sorted(wanted)


@transaction.atomic
def directory_signed_in(*, user, source: str, subject: str, role_groups: frozenset[str]) -> None:
    """After the directory (or identity provider) accepted someone: link the account to its
    directory entry on first sign-in (directory.user_created) and set its role groups from
    the directory's groups (directory.roles_changed when they differ from last time)."""
    account, created = DirectoryAccount.objects.get_or_create(
        user=user, defaults={"source": source, "subject": subject}
    )
    account.subject = subject
    account.last_sign_in_at = timezone.now()
    account.save(update_fields=["subject", "last_sign_in_at"])
    changed = _set_role_groups(user, role_groups)
    if created:
        record(
            "directory.user_created",
            target=user,
            source=source,
            username=user.get_username(),
            role_groups=sorted(role_groups),
        )
    elif changed:
        before, after = changed
        record(
            "directory.roles_changed",
            target=user,
            source=source,
            username=user.get_username(),
            role_groups_before=before,
            role_groups_after=after,
        )


@transaction.atomic
def directory_roles_changed(*, user, role_groups: frozenset[str]) -> bool:
    """``sync_directory``: the directory now gives ``user`` other roles than they have."""
    changed = _set_role_groups(user, role_groups)
    if changed:
        before, after = changed
        record(
            "directory.roles_changed",
            target=user,
            source=user.directory_account.source,
            username=user.get_username(),
            role_groups_before=before,
            role_groups_after=after,
        )
    return changed is not None


@transaction.atomic
def deactivate_directory_user(*, user, reason: str) -> None:
    """``sync_directory``: the directory disabled or deleted ``user``, or gives them no role
    any more. Deactivates the account (ending its sessions and websockets) and records why."""
    deactivate_user(actor=None, user=user)
    record(
        "directory.user_deactivated",
        target=user,
        source=user.directory_account.source,
        username=user.get_username(),
        reason=reason,
    )
