"""Sign-in through an OpenID Connect provider (Entra ID, Keycloak, ADFS, Okta) with
mozilla-django-oidc: the authorisation code flow with PKCE, endpoints from the issuer's
discovery document, and an ID token whose signature, issuer, audience, expiry and nonce
are all checked here (mozilla-django-oidc itself checks neither issuer nor audience).

Roles come from OIDC_ROLES_CLAIM as for the directory: someone with no mapped role is
refused, and an account of the same name that did not come from this provider is never
taken over. Every refusal is recorded as oidc.refused with its reason, and the person is
told in a sentence on the sign-in page.

The second factor: where OIDC_TRUST_IDP_MFA is on and the ID token asserts multi-factor
authentication (``amr`` contains ``mfa``, or ``acr`` is one of OIDC_MFA_ACR_VALUES), the
session is verified with the user's IdentityProviderDevice; otherwise the authenticator
step follows as for everyone.
"""

import hashlib
import logging
import time

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import Http404, HttpResponseRedirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import directory, roles, services
from accounts.models import DirectoryAccount, IdentityProviderDevice
from audit.log import record

logger = logging.getLogger(__name__)

# The discovery document is asked for again after this long (keys and endpoints rotate).
DISCOVERY_CACHE_SECONDS = 3600
# Clocks of the provider and this server may differ by this much.
CLOCK_SKEW_SECONDS = 60
ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}

REFUSAL_MESSAGES = {
    "provider_unavailable": (
        "The company sign-in service cannot be reached just now. Try again in a few minutes, "
        "or sign in with a local account; if it lasts, tell the IT service desk."
    ),
    "no_role": (
        "Your company account is not in a group that may use this chat. Ask the IT service "
        "desk to add you to the chat's group."
    ),
    "username_taken": (
        "An account with your username already exists here and was not made by company "
        "sign-in. Ask an administrator to sort it out."
    ),
}
REFUSED = "Company sign-in did not work. Start again from the sign-in page."


def oidc_configured() -> bool:
    return bool(getattr(settings, "OIDC_OP_ISSUER", ""))


class Refused(SuspiciousOperation):
    """The provider's answer is not accepted; ``reason`` is what oidc.refused records."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def discovery() -> dict:
    """The issuer's discovery document (cached), checked to name the configured issuer."""
    key = f"oidc.discovery.{hashlib.sha256(settings.OIDC_OP_ISSUER.encode()).hexdigest()}"
    document = cache.get(key)
    if document is not None:
        return document
    url = f"{settings.OIDC_OP_ISSUER}/.well-known/openid-configuration"
    try:
        response = requests.get(url, verify=settings.OIDC_VERIFY_SSL, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        directory.note_status("oidc", False, str(exc)[:300])
        raise Refused("provider_unavailable", str(exc)[:300]) from exc
    if document.get("issuer", "").rstrip("/") != settings.OIDC_OP_ISSUER:
        raise Refused("issuer", f"discovery names {document.get('issuer')!r}")
    if not all(document.get(field) for field in ENDPOINTS.values()):
        raise Refused("discovery", "the discovery document lacks an endpoint")
    directory.note_status("oidc", True)
    cache.set(key, document, DISCOVERY_CACHE_SECONDS)
    return document


def provider_status() -> dict | None:
    """{"ok", "error", "checked_at"} for the identity provider, at most
    directory.STATUS_MAX_AGE_SECONDS old (asking its discovery document when it is older);
    None when none is configured."""
    if not oidc_configured():
        return None
    status = directory.cached_status("oidc")
    if directory.is_stale(status):
        try:
            response = requests.get(
                f"{settings.OIDC_OP_ISSUER}/.well-known/openid-configuration",
                verify=settings.OIDC_VERIFY_SSL,
                timeout=settings.OIDC_TIMEOUT,
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            directory.note_status("oidc", False, str(exc)[:300])
        else:
            directory.note_status("oidc", True)
        status = directory.cached_status("oidc") or {"ok": False, "error": "", "checked_at": 0}
    return status


def provider_up() -> float:
    status = provider_status()
    return float(bool(status and status["ok"]))


def oidc_setting(attr, *args):
    """mozilla-django-oidc's settings, with the provider's endpoints from discovery."""
    if attr in ENDPOINTS:
        return discovery()[ENDPOINTS[attr]]
    return import_from_settings(attr, *args)


def role_groups_from(claims: dict) -> frozenset[str]:
    granted = claims.get(settings.OIDC_ROLES_CLAIM) or []
    if isinstance(granted, str):
        granted = [granted]
    mapping = {
        settings.OIDC_EMPLOYEES_ROLE: roles.EMPLOYEES,
        settings.OIDC_COMPLIANCE_ROLE: roles.COMPLIANCE,
        settings.OIDC_ADMINS_ROLE: roles.ADMINS,
    }
    return frozenset(role for name, role in mapping.items() if name and name in granted)


def asserts_mfa(id_token: dict) -> bool:
    """Whether the ID token says the provider itself checked more than one factor."""
    amr = id_token.get("amr") or []
    return "mfa" in amr or (
        bool(id_token.get("acr")) and id_token.get("acr") in settings.OIDC_MFA_ACR_VALUES
    )


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with the checks it leaves out and the project's rules."""

    sign_in_source = "oidc"

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        # Endpoints are looked up when a sign-in needs them, not when Django loads backends.
        self.OIDC_RP_CLIENT_ID = import_from_settings("OIDC_RP_CLIENT_ID", "")
        self.OIDC_RP_CLIENT_SECRET = import_from_settings("OIDC_RP_CLIENT_SECRET", "")
        self.OIDC_RP_SIGN_ALGO = import_from_settings("OIDC_RP_SIGN_ALGO", "RS256")
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    def __getattr__(self, name):
        if name in ENDPOINTS:
            return oidc_setting(name)
        raise AttributeError(name)

    def authenticate(self, request, **kwargs):
        if not oidc_configured() or request is None or "code" not in request.GET:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except Refused as refusal:
            self._refused(request, refusal.reason, str(refusal))
        except SuspiciousOperation as exc:
            self._refused(request, "invalid", str(exc))
        except requests.RequestException as exc:
            self._refused(request, "provider_unavailable", str(exc))
        return None

    def _refused(self, request, reason: str, detail: str) -> None:
        logger.warning("Company sign-in refused (%s): %s", reason, detail[:300])
        record("oidc.refused", outcome="denied", request=request, reason=reason)
        request.sign_in_failure = {"backend": "oidc", "reason": reason}
        messages.error(request, REFUSAL_MESSAGES.get(reason, REFUSED))

    def verify_token(self, token, **kwargs):
        """The ID token: signed by the provider's key with the configured algorithm, for
        this client, from this issuer, not expired, carrying this sign-in's nonce, once."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Refused("malformed", str(exc)) from exc
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise Refused("algorithm", f"signed with {header.get('alg')!r}")
        key = self.retrieve_matching_jwk(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_OP_ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.InvalidAudienceError as exc:
            raise Refused("audience", str(exc)) from exc
        except jwt.InvalidIssuerError as exc:
            raise Refused("issuer", str(exc)) from exc
        except jwt.ExpiredSignatureError as exc:
            raise Refused("expired", str(exc)) from exc
        except jwt.InvalidSignatureError as exc:
            raise Refused("signature", str(exc)) from exc
        except jwt.InvalidTokenError as exc:
            raise Refused("invalid", str(exc)) from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise Refused("audience", "several audiences and another authorised party")
        nonce = kwargs.get("nonce")
        if not nonce or claims.get("nonce") != nonce:
            raise Refused("nonce", "the ID token's nonce is not this sign-in's")
        # A nonce is good for one sign-in, whatever happens to the session it came from.
        seen = f"oidc.nonce.{hashlib.sha256(nonce.encode()).hexdigest()}"
        if not cache.add(seen, 1, max(1, int(claims["exp"] - time.time())) + CLOCK_SKEW_SECONDS):
            raise Refused("nonce_replayed", "this nonce was used before")
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        # mozilla-django-oidc turns a refusal from here into a bare "no user": say why first.
        try:
            return self._account_for(access_token, id_token, payload)
        except Refused as refusal:
            self._refused(self.request, refusal.reason, str(refusal))
            raise

    def _account_for(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:
            raise Refused("userinfo_subject", "userinfo describes someone else")
        claims = {**userinfo, **payload}
        granted = role_groups_from(claims)
        if not granted:
            raise Refused("no_role")
        account = (
            DirectoryAccount.objects.filter(
                source=DirectoryAccount.Source.OIDC, subject=payload["sub"]
            )
            .select_related("user")
            .first()
        )
        if account is not None:
            user = account.user
        else:
            username = str(claims.get(settings.OIDC_USERNAME_CLAIM) or "").strip()
            try:
                UnicodeUsernameValidator()(username)
            except ValidationError:
                raise Refused(
                    "no_username", f"no usable {settings.OIDC_USERNAME_CLAIM} claim"
                ) from None
            if len(username) > 150:
                raise Refused("no_username", f"{settings.OIDC_USERNAME_CLAIM} is too long")
            if self.UserModel.objects.filter(username__iexact=username).exists():
                raise Refused("username_taken", username)
            user = self.UserModel(username=username)
            user.set_unusable_password()
        user.email = str(claims.get("email") or user.email)[:254]
        user.first_name = str(claims.get("given_name") or user.first_name)[:150]
        user.last_name = str(claims.get("family_name") or user.last_name)[:150]
        user.save()
        services.directory_signed_in(
            user=user,
            source=DirectoryAccount.Source.OIDC,
            subject=payload["sub"],
            role_groups=granted,
        )
        user.identity_provider_mfa = settings.OIDC_TRUST_IDP_MFA and asserts_mfa(payload)
        return user

    def get_user(self, user_id):
        try:
            return self.UserModel.objects.get(pk=user_id)
        except self.UserModel.DoesNotExist:
            return None


class StartSignIn(OIDCAuthenticationRequestView):
    """/accounts/oidc/start/: off to the provider, with state, nonce and a PKCE challenge."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = import_from_settings("OIDC_RP_CLIENT_ID", "")

    def get(self, request):
        if not oidc_configured():
            raise Http404("Company sign-in is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except Refused as refusal:
            OIDCBackend()._refused(request, refusal.reason, str(refusal))
            return HttpResponseRedirect(settings.LOGIN_URL)
        return super().get(request)


class FinishSignIn(OIDCAuthenticationCallbackView):
    """/accounts/oidc/callback/: the provider's answer; then the second factor."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request):
        if not oidc_configured():
            raise Http404("Company sign-in is not configured.")
        state = request.GET.get("state")
        if "code" in request.GET and state not in request.session.get("oidc_states", {}):
            # A callback this session did not start, or one used already.
            OIDCBackend()._refused(request, "state", "unknown or used state")
            return self.login_failure()
        return super().get(request)

    def login_success(self):
        response = super().login_success()
        if getattr(self.user, "identity_provider_mfa", False):
            device, _ = IdentityProviderDevice.objects.get_or_create(
                user=self.user, defaults={"name": "Company sign-in", "confirmed": True}
            )
            services.mark_verified(self.request, device)
            record(
                "otp.success", request=self.request, target=self.user, device="identity_provider"
            )
        return response
