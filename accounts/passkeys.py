"""The WebAuthn ceremonies of passkeys, on django-otp-webauthn's views and helper.

A passkey is a second factor here, after the password, never a sign-in on its own
(OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN is off). The library's views do the ceremonies; these
subclasses add what the project needs around them:

- registration needs a fresh second factor (accounts.step_up) and a name chosen first;
- a passkey used at the verify step or for step-up marks the session verified through
  ``services.mark_verified`` (new session key, step-up time), like a code;
- passkey.registered / passkey.used / passkey.failed (with the reason) are audited;
- user verification (PIN, fingerprint) is preferred at registration and at use, attestation
  is "none" (the library's default): any authenticator is accepted, none is identified;
- an action that a passkey confirms by itself (making an API token) gets an assertion of its
  own: ``begin_action_assertion`` issues a challenge for that action only, which
  ``check_action_assertion`` spends on the action's request, whether it is right or not. The
  session is not marked verified again: the next action needs a passkey of its own.

The library's own browser script (static django_otp_webauthn/*.js) runs the browser side; it
is served from this site like every script, under the strict CSP (templates/accounts/
passkey_scripts.html).
"""

import json
import time

from django.db import transaction
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from django_otp_webauthn import exceptions
from django_otp_webauthn import views as webauthn_views
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.models import WebAuthnCredential
from django_otp_webauthn.utils import rewrite_exceptions
from webauthn.helpers.structs import UserVerificationRequirement

from accounts import services

PENDING_NAME_KEY = "passkey_name"
# The challenge of an assertion that confirms one action, and for how long it may be answered
# (the browser gives up after a minute; a person reading the prompt needs a little more).
ACTION_CHALLENGE_KEY = "passkey_action_challenge"
ACTION_CHALLENGE_SECONDS = 120


class StepUpNeeded(exceptions.OTPWebAuthnApiError):
    status_code = 403
    default_detail = (
        "Confirm it is you with your authenticator app first: reload the page and follow "
        "the prompt."
    )
    default_code = "step_up_needed"


class NameMissing(exceptions.OTPWebAuthnApiError):
    status_code = 400
    default_detail = "Give the passkey a name first, then register it."
    default_code = "name_missing"


# What a refused passkey tells its user, by reason; the reason itself goes to the audit log.
REFUSALS = {
    "counter_regression": (
        "This passkey was refused: its use counter went backwards, which happens when a "
        "passkey has been copied. Use another passkey or your authenticator app, and tell "
        "your administrator."
    ),
    "wrong_origin": (
        "This passkey was refused: the page you used it on is not this site's address. Open "
        "the site at its usual address and try again."
    ),
    "credential_not_found": "That passkey is not registered here (it may have been removed).",
    "credential_user_mismatch": "That passkey belongs to another account.",
}
REFUSED = "The passkey could not be checked. Try again, or use your authenticator app."


def refusal_reason(error: Exception) -> str:
    """A short, stable reason for a refused ceremony, from the library's error and the
    py_webauthn error behind it."""
    cause = str(error.__cause__ or "").lower()
    if "sign count" in cause:
        return "counter_regression"
    if "origin" in cause:
        return "wrong_origin"
    if "challenge" in cause:
        return "wrong_challenge"
    if "rp id" in cause:
        return "wrong_rp_id"
    if "signature" in cause:
        return "bad_signature"
    return getattr(error, "code", "error")


class PasskeyHelper(WebAuthnHelper):
    """The library's helper with user verification preferred when a passkey is used too
    (the library discourages it when a user is known), and the chosen name on new ones."""

    def get_generate_authentication_options_kwargs(self, *, user=None, require_user_verification):
        options = super().get_generate_authentication_options_kwargs(
            user=user, require_user_verification=require_user_verification
        )
        options["user_verification"] = UserVerificationRequirement.PREFERRED
        return options

    def create_credential(self, user, response, parsed_credential, original_data):
        credential = super().create_credential(user, response, parsed_credential, original_data)
        credential.name = self.request.session.get(PENDING_NAME_KEY, "")
        return credential


def _refused(view, error: exceptions.OTPWebAuthnApiError, *, ceremony: str) -> JsonResponse:
    reason = refusal_reason(error)
    services.passkey_failed(view.request, ceremony=ceremony, reason=reason)
    detail = REFUSALS.get(reason) or (
        str(error) if isinstance(error, StepUpNeeded | NameMissing) else REFUSED
    )
    return JsonResponse({"detail": detail, "code": reason}, status=error.status_code)


class _AuditedRefusals:
    """A refused ceremony is recorded as passkey.failed and answered with a sentence."""

    ceremony = ""

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.OTPWebAuthnApiError):
            return _refused(self, exc, ceremony=self.ceremony)
        return super().handle_exception(exc)


class _RegistrationChecks(_AuditedRefusals):
    ceremony = "registration"

    def check_can_register(self):
        if not services.second_factor_is_fresh(self.request):
            raise StepUpNeeded()
        if not self.request.session.get(PENDING_NAME_KEY):
            raise NameMissing()


class BeginRegistration(_RegistrationChecks, webauthn_views.BeginCredentialRegistrationView):
    pass


@method_decorator(sensitive_variables(), name="post")
class CompleteRegistration(_RegistrationChecks, webauthn_views.CompleteCredentialRegistrationView):
    def post(self, *args, **kwargs):
        with transaction.atomic():
            response = super().post(*args, **kwargs)
            credential = WebAuthnCredential.objects.get(pk=json.loads(response.content)["id"])
            services.passkey_registered(self.request, credential)
        self.request.session.pop(PENDING_NAME_KEY, None)
        return JsonResponse({"id": credential.pk, "redirect_url": reverse("accounts:passkeys")})


class BeginAuthentication(_AuditedRefusals, webauthn_views.BeginCredentialAuthenticationView):
    ceremony = "authentication"


class CompleteAuthentication(_AuditedRefusals, webauthn_views.CompleteCredentialAuthenticationView):
    ceremony = "authentication"

    def complete_auth(self, device):
        services.passkey_used(self.request, device)


class PasskeyRefused(Exception):
    """An action's passkey assertion was not accepted; the message is for the person."""


# What the person is told for reasons of an action's assertion that REFUSALS does not name.
ACTION_REFUSALS = {
    "no_challenge": "Use your passkey with the page's button: it answers for this action only.",
    "challenge_expired": "That took too long. Use your passkey again.",
}


def begin_action_assertion(request, *, purpose: str) -> dict:
    """The options for a passkey assertion that confirms one action (``purpose``) of the
    signed-in user; its challenge is kept in the session for check_action_assertion."""
    helper = WebAuthnCredential.get_webauthn_helper(request=request)
    options, state = helper.authenticate_begin(user=request.user, require_user_verification=False)
    request.session[ACTION_CHALLENGE_KEY] = {"purpose": purpose, "state": state, "at": time.time()}
    return options


def discard_action_assertion(request) -> None:
    """Spend the challenge begin_action_assertion issued, unanswered (the action was refused
    for another reason: its next attempt needs a passkey of its own)."""
    request.session.pop(ACTION_CHALLENGE_KEY, None)


@sensitive_variables()
def check_action_assertion(request, *, purpose: str, assertion: str) -> WebAuthnCredential:
    """The user's passkey that answered the challenge begin_action_assertion issued for
    ``purpose`` with ``assertion`` (the browser's credential, as JSON). The challenge is
    spent first, whatever follows, so an assertion confirms one request only. Records
    passkey.used (with the purpose; the session stays as it was) or passkey.failed, and
    raises PasskeyRefused with a sentence for the person."""
    pending = request.session.pop(ACTION_CHALLENGE_KEY, None)
    request.session.save()
    try:
        if not pending or pending.get("purpose") != purpose:
            raise exceptions.InvalidState(code="no_challenge")
        if not 0 <= time.time() - pending["at"] <= ACTION_CHALLENGE_SECONDS:
            raise exceptions.InvalidState(code="challenge_expired")
        try:
            data = json.loads(assertion)
        except ValueError:
            raise exceptions.MalformedRequest() from None
        helper = WebAuthnCredential.get_webauthn_helper(request=request)
        # The reason is recorded in passkey.failed; the log gets no traceback of it.
        with rewrite_exceptions():
            device = helper.authenticate_complete(
                user=request.user, state=pending["state"], data=data
            )
        if not device.confirmed:
            raise exceptions.CredentialDisabled()
    except exceptions.OTPWebAuthnApiError as error:
        reason = refusal_reason(error)
        services.passkey_failed(request, ceremony=purpose, reason=reason)
        raise PasskeyRefused(
            REFUSALS.get(reason) or ACTION_REFUSALS.get(reason) or REFUSED
        ) from None
    services.passkey_confirmed(request, device, purpose=purpose)
    return device


def browser_configuration(request) -> dict:
    """What the library's browser script reads from the page (json_script, never inline
    code): where the ceremonies begin and complete, and the CSRF token."""
    return {
        "autocompleteLoginFieldSelector": None,
        "nextFieldSelector": "input[name='next']",
        "csrfToken": get_token(request),
        "beginAuthenticationUrl": reverse("accounts:passkey_authentication_begin"),
        "completeAuthenticationUrl": reverse("accounts:passkey_authentication_complete"),
        "beginRegistrationUrl": reverse("accounts:passkey_registration_begin"),
        "completeRegistrationUrl": reverse("accounts:passkey_registration_complete"),
    }
