"""Keep track of sign-in sessions, and record lockouts in the audit log."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from accounts import lockout, services
from audit.log import record


@receiver(user_logged_in, dispatch_uid="accounts_note_sign_in")
def _signed_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        services.note_sign_in(request, user)


@receiver(user_logged_out, dispatch_uid="accounts_forget_session")
def _signed_out(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        services.forget_session(request.session.session_key)


@receiver(user_locked_out, dispatch_uid="accounts_audit_lockout")
def _locked_out(sender, request, username=None, ip_address=None, **kwargs):
    record(
        "lockout",
        outcome="denied",
        request=request,
        username_tried=str(username or "")[:150],
        limit=lockout.limit_reached(request, username),
    )
