"""Keep track of sign-in sessions (signing out forgets them in accounts.sessions, where the
session is emptied), record lockouts in the audit log, and destroy a deleted user's data
keys."""

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete
from django.dispatch import receiver

from accounts import lockout, services
from audit.log import record
from core import datakeys


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


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts_destroy_keys")
def _deleted(sender, instance, **kwargs):
    """A user deleted (not erased: the admin's or the shell's delete) leaves no data key
    behind, whichever way the rows went."""
    datakeys.destroy_owner(instance.pk, note={"joined_at": instance.date_joined.isoformat()})
