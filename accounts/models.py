"""Second factors and sign-in sessions.

Both devices are django-otp ``Device`` subclasses, so django-otp's verification, session
handling and throttling apply. They differ from django-otp's own TOTP and static devices in
how they keep secrets: the TOTP key is encrypted with the project keyring, and backup codes
are stored only as password hashes (ASVS 6.5.2).
"""

import base64
import hashlib
import secrets
import time
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from core.crypto import EncryptedTextField

TOTP_KEY_BYTES = 20  # 160 bits, RFC 4226's recommended length
BACKUP_CODE_COUNT = 10
# 10 characters from 31 without look-alikes (0/o, 1/l/i): about 49 bits per code.
BACKUP_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
BACKUP_CODE_LENGTH = 10
BACKUP_CODE_HASHER = "backup_code_pbkdf2"


def new_totp_key() -> str:
    return secrets.token_hex(TOTP_KEY_BYTES)


def authenticator_code(base32_key: str, at: float | None = None) -> str:
    """The 6-digit code an authenticator app shows for ``base32_key`` (the key as the
    enrolment page shows it) now, or at Unix time ``at``. For clients that sign in without
    a phone: the bench and the tests."""
    key = base64.b32decode(base32_key + "=" * (-len(base32_key) % 8))
    totp = TOTP(key, 30, 0, 6, 0)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"


class AccountThrottlingMixin(ThrottlingMixin):
    """django-otp's doubling wait for a device, across every session of its user, starting
    only at OTP_USER_FAILURE_LIMIT wrong codes within OTP_USER_FAILURE_WINDOW.

    Each session also waits after its own wrong codes (accounts.services.check_code), so a
    guesser who knows the password slows down at once without holding the owner back.
    """

    class Meta:
        abstract = True

    def get_throttle_factor(self):
        return settings.OTP_TOTP_THROTTLE_FACTOR

    def verify_is_allowed(self):
        if self.throttling_failure_count < settings.OTP_USER_FAILURE_LIMIT:
            return super(ThrottlingMixin, self).verify_is_allowed()
        return super().verify_is_allowed()

    def throttle_increment(self, commit=True):
        """Count one more wrong code in the database itself, so simultaneous guesses from
        several sessions all count; a count whose latest failure is older than the window
        starts again. Always saved: ``commit`` is accepted for django-otp's signature."""
        now = timezone.now()
        rows = type(self).objects.filter(pk=self.pk)
        rows.filter(throttling_failure_timestamp__lt=now - settings.OTP_USER_FAILURE_WINDOW).update(
            throttling_failure_count=0
        )
        rows.update(
            throttling_failure_count=F("throttling_failure_count") + 1,
            throttling_failure_timestamp=now,
        )
        self.refresh_from_db(fields=["throttling_failure_count", "throttling_failure_timestamp"])


class TOTPDevice(TimestampMixin, AccountThrottlingMixin, Device):
    """An authenticator app (RFC 6238 time-based codes) belonging to one user.

    Unconfirmed until the user types the first valid code during enrolment. Each code is
    accepted once only: a code whose time step is not newer than the last one used fails.
    """

    key = EncryptedTextField(
        default=new_totp_key,
        help_text="The shared secret, encrypted with the project keyring; never shown.",
    )
    step = models.PositiveSmallIntegerField(default=30, help_text="Seconds per code.")
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(
        default=1, help_text="Codes from this many steps before or after now are accepted."
    )
    drift = models.SmallIntegerField(
        default=0, help_text="How many steps the user's phone clock is known to be off."
    )
    last_t = models.BigIntegerField(
        default=-1, help_text="Time step of the last accepted code; older ones are refused."
    )

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def bin_key(self) -> bytes:
        return bytes.fromhex(self.key)

    @property
    def base32_key(self) -> str:
        return base64.b32encode(self.bin_key).decode("ascii").rstrip("=")

    def config_url(self, issuer: str) -> str:
        """The otpauth:// URI an authenticator app reads from the QR code."""
        issuer = issuer.replace(":", "")
        label = quote(f"{issuer}:{self.user.get_username()}")
        params = urlencode(
            {
                "secret": self.base32_key,
                "issuer": issuer,
                "algorithm": "SHA1",
                "digits": self.digits,
                "period": self.step,
            },
            quote_via=quote,
        )
        return f"otpauth://totp/{label}?{params}"

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        token = str(token).strip().replace(" ", "")
        verified = False
        if token.isdigit() and len(token) == self.digits:
            totp = TOTP(self.bin_key, self.step, 0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(int(token), self.tolerance, self.last_t + 1)
        if verified:
            self.last_t = totp.t()
            self.drift = totp.drift
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
        else:
            self.throttle_increment(commit=True)
        return verified


def normalise_backup_code(code: str) -> str:
    return "".join(ch for ch in str(code).lower() if ch.isalnum())


def format_backup_code(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


class BackupCodeDevice(AccountThrottlingMixin, Device):
    """A user's set of single-use backup codes, for when the phone is lost.

    The codes are shown once, when generated; only their hashes are kept (``BackupCode``).
    """

    class Meta(Device.Meta):
        verbose_name = "backup codes"

    def codes_left(self) -> int:
        return self.codes.filter(used_at__isnull=True).count()

    def replace_codes(self) -> list[str]:
        """Delete the old codes and make new ones; returns them in plain text, once."""
        plain = [
            "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
            for _ in range(BACKUP_CODE_COUNT)
        ]
        self.codes.all().delete()
        BackupCode.objects.bulk_create(
            BackupCode(device=self, code_hash=make_password(code, hasher=BACKUP_CODE_HASHER))
            for code in plain
        )
        return [format_backup_code(code) for code in plain]

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        code = normalise_backup_code(token)
        if len(code) == BACKUP_CODE_LENGTH:
            # The row lock stops two simultaneous sign-ins from spending the same code.
            with transaction.atomic():
                for candidate in self.codes.select_for_update().filter(used_at__isnull=True):
                    if check_password(code, candidate.code_hash):
                        candidate.used_at = timezone.now()
                        candidate.save(update_fields=["used_at"])
                        self.throttle_reset(commit=True)
                        return True
        self.throttle_increment(commit=True)
        return False


class BackupCode(models.Model):
    """One backup code, as a password hash; ``used_at`` is set when it is spent."""

    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=128)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"backup code of {self.device.user} ({'used' if self.used_at else 'unused'})"


def hashed_session_key(session_key: str) -> str:
    """What the database keeps of a session key: SHA-256, cut to the 40 characters of
    django_session's key column (160 bits). The key itself is a bearer secret (whoever has it
    is signed in), so a copy of the database must not hold it."""
    return hashlib.sha256(session_key.encode()).hexdigest()[:40]


class SignInSession(models.Model):
    """A browser session of a signed-in user, as its owner sees it on the sessions page: so
    that any or all of a user's sessions can be ended (by the owner, an admin, a password
    change, a 2FA reset, deactivation) and their websockets closed.

    ``key_hash`` is ``hashed_session_key`` of the session's key, which is also the key of
    its row in django_session (accounts.sessions); the key itself is stored nowhere.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sign_in_sessions"
    )
    key_hash = models.CharField(
        max_length=40, unique=True, help_text="A hash of the session key; the key is not stored."
    )
    started_at = models.DateTimeField(default=timezone.now, help_text="When the user signed in.")
    last_seen_at = models.DateTimeField(
        default=timezone.now, help_text="The last request of this session (to the minute)."
    )
    ip_address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The address of the last request."
    )
    user_agent = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = "sign-in session"

    def __str__(self):
        return f"session of {self.user} since {self.started_at:%Y-%m-%d %H:%M}"


class DirectoryAccount(models.Model):
    """A user whose identity and roles come from the company directory (LDAP / Active
    Directory) or an OpenID Connect provider. Their password is never kept here; their role
    groups are set from the directory at every sign-in and by ``sync_directory``."""

    class Source(models.TextChoices):
        LDAP = "ldap", "LDAP / Active Directory"
        OIDC = "oidc", "OpenID Connect"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account"
    )
    source = models.CharField(max_length=8, choices=Source.choices)
    subject = models.CharField(
        max_length=500,
        help_text="The directory entry's DN, or the identity provider's subject identifier.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "subject"], name="directory_subject_once")
        ]

    def __str__(self):
        return f"{self.user} from {self.get_source_display()}"


class IdentityProviderDevice(Device):
    """The second factor an OpenID Connect provider asserted at sign-in (``amr`` says
    ``mfa``, or ``acr`` is one of OIDC_MFA_ACR_VALUES), accepted only where
    OIDC_TRUST_IDP_MFA is on. It verifies no code: a session is marked verified with it only
    by accounts.oidc, right after the provider's signed ID token said so."""

    def verify_token(self, token):
        return False


class LegalHold(models.Model):
    """A legal hold on one user's data, placed by Compliance for a case. While it is in place
    (not lifted), nothing of the user's is erased: not by retention, not by the user, not by
    an admin."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="legal_holds"
    )
    case_reference = models.CharField(
        max_length=100, help_text="The case or matter this hold is for, as Legal names it."
    )
    placed_at = models.DateTimeField(default=timezone.now, editable=False)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    lifted_at = models.DateTimeField(null=True, blank=True, editable=False)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-placed_at"]
        indexes = [models.Index(fields=["user", "lifted_at"])]

    def __str__(self):
        state = "lifted" if self.lifted_at else "in place"
        return f"legal hold {self.case_reference} on {self.user} ({state})"
