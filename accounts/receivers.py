"""Keep track of sign-in sessions (signing out forgets them in accounts.sessions, where the
session is emptied), and record lockouts in the audit log."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from accounts import lockout, services
from audit.log import record


@receiver(user_logged_in, dispatch_uid="accounts_note_sign_in")
def _signed_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        services.note_sign_in(request, user)


@receiver(user_locked_out, dispatch_uid="accounts_audit_lockout")
def _locked_out(sender, request, username=None, ip_address=None, **kwargs):
    record(
        "lockout",
        outcome="denied",
        request=request,
        username_tried=str(username or "")[:150],
        limit=lockout.limit_reached(request, username),
    )
