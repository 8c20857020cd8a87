"""'Your data': the archive of everything a user stored, for the user or, on their request,
produced by an admin; recorded as user.data_exported either way.

The archive is built by ``core.personal_data`` from the sections the apps register; this
module registers the account's own section and is the service that builds and records it.
"""

import json

from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone

from accounts.models import BackupCodeDevice, SignInSession, TOTPDevice
from audit.log import record
from core import personal_data
from core.labels import one_line_label

REASON_MAX = 500


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def account_section(user) -> personal_data.SectionData:
    """The account as stored: profile, groups, second factors (never their secrets) and
    sign-in sessions."""
    authenticators = [
        {
            "name": device.name,
            "confirmed": device.confirmed,
            "set_up_at": _iso(device.created_at),
            "last_used_at": _iso(device.last_used_at),
        }
        for device in TOTPDevice.objects.filter(user=user).order_by("created_at")
    ]
    backup = BackupCodeDevice.objects.filter(user=user).first()
    account = {
        "username": user.get_username(),
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "active": user.is_active,
        "joined_at": _iso(user.date_joined),
        "last_sign_in_at": _iso(user.last_login),
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "authenticator_apps": authenticators,
        "backup_codes_left": backup.codes_left() if backup else 0,
        "sign_in_sessions": [
            {"started_at": _iso(session.started_at)}
            for session in SignInSession.objects.filter(user=user).order_by("started_at")
        ],
    }
    return personal_data.SectionData(
        {"account.json": json.dumps(account, ensure_ascii=False, indent=2)}, 1
    )


def as_download(archive: personal_data.Archive, user) -> HttpResponse:
    """The archive as a zip download, never cached."""
    response = HttpResponse(archive.content, content_type="application/zip")
    name = f"your-data-{user.pk}-{archive.created_at:%Y%m%dT%H%M%SZ}.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@transaction.atomic
def export_user_data(*, actor, user, request=None, reason: str = "") -> personal_data.Archive:
    """Everything ``user`` stored, as one zip. ``actor`` is the user themself, or an admin
    acting on the user's request (then ``reason`` names the request, and is required)."""
    by_admin = actor is not None and actor.pk != user.pk
    reason = one_line_label(reason or "")[:REASON_MAX].strip()
    if by_admin and not reason:
        raise ValueError(
            "Say whose request this answers (a ticket or the date of the user's request): it "
            "goes in the audit log."
        )
    archive = personal_data.build_archive(user, now=timezone.now())
    record(
        "user.data_exported",
        actor=actor,
        request=request,
        target=user,
        by_admin=by_admin,
        **({"reason": reason} if by_admin else {}),
        **{f"{section}_count": count for section, count in archive.counts.items()},
        size_bytes=len(archive.content),
    )
    return archive
