"""Erasing a user, and the legal holds that stop any erasure while they are in place.

Erasure is final, even against old database backups: each app deletes its rows of the user
(``accounts.signals.user_erasing``), then the user's data keys are destroyed
(``core.datakeys``), so a backup restored later shows their content as erased. The account
itself stays, renamed ``erased-<id>``, without password, e-mail, groups or second factors:
the audit log keeps referring to it.

Compliance places and lifts legal holds; a user under one is exempt from erasure by an
admin, by retention (``chat.retention``) and of their own conversations.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.models import BackupCodeDevice, LegalHold, TOTPDevice
from accounts.services import end_all_sessions
from accounts.signals import user_erasing
from audit.log import record
from core import datakeys
from core.labels import one_line_label

REASON_MAX = 500
CASE_REFERENCE_MAX = 100
ERASED_USERNAME = "erased-{pk}"

NOT_COMPLIANCE = (
    "Only members of the Compliance group can place or lift a legal hold. Ask Compliance."
)


class ErasureRefused(Exception):
    """An erasure that may not happen (a legal hold, oneself, no reason); the message says
    why and what to do."""


# --- Legal holds -----------------------------------------------------------------------------


def holds_in_place(user) -> list[LegalHold]:
    return list(LegalHold.objects.filter(user=user, lifted_at__isnull=True).order_by("placed_at"))


def held_user_ids():
    """A queryset of the ids of users under a legal hold now (for filtering others)."""
    return LegalHold.objects.filter(lifted_at__isnull=True).values("user_id")


def is_compliance(user) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.groups.filter(name=roles.COMPLIANCE).exists()
    )


def refuse_if_held(user, what: str) -> None:
    holds = holds_in_place(user)
    if holds:
        cases = ", ".join(hold.case_reference for hold in holds)
        raise ErasureRefused(
            f"{what} is under a legal hold (case {cases}), so nothing of it is erased until "
            "Compliance lifts the hold."
        )


@transaction.atomic
def place_legal_hold(*, actor, user, case_reference: str, request=None) -> LegalHold:
    """Put ``user``'s data under a legal hold for ``case_reference`` (Compliance only)."""
    if not is_compliance(actor):
        raise PermissionDenied(NOT_COMPLIANCE)
    case_reference = one_line_label(case_reference or "")[:CASE_REFERENCE_MAX].strip()
    if not case_reference:
        raise ValueError("A legal hold needs a case reference: type the case or matter number.")
    hold = LegalHold.objects.create(user=user, case_reference=case_reference, placed_by=actor)
    record(
        "legal_hold.placed",
        actor=actor,
        request=request,
        target=user,
        case_reference=case_reference,
        hold_id=hold.pk,
    )
    return hold


@transaction.atomic
def lift_legal_hold(*, actor, hold: LegalHold, request=None) -> LegalHold:
    """End a legal hold (Compliance only); the user's data is subject to erasure again."""
    if not is_compliance(actor):
        raise PermissionDenied(NOT_COMPLIANCE)
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if hold.lifted_at is not None:
        raise ValueError(f"The legal hold for case {hold.case_reference} was already lifted.")
    hold.lifted_at = timezone.now()
    hold.lifted_by = actor
    hold.save(update_fields=["lifted_at", "lifted_by"])
    record(
        "legal_hold.lifted",
        actor=actor,
        request=request,
        target=hold.user,
        case_reference=hold.case_reference,
        hold_id=hold.pk,
        held_days=(hold.lifted_at - hold.placed_at).days,
    )
    return hold


# --- Erasing a user --------------------------------------------------------------------------


@transaction.atomic
def erase_user(
    *, actor, user, reason: str, request=None, reapplying: dict | None = None
) -> dict[str, int]:
    """Erase everything ``user`` stored and make the account an empty shell; returns what
    was erased, by kind. ``actor`` is the admin (None for an operator's command).

    ``reapplying``: the key store's note of an erasure made after the backup this database
    was restored from; the keys are gone already, so a legal hold of that backup's time no
    longer matters."""
    reason = (reason or "").strip()[:REASON_MAX]
    if not reason:
        raise ErasureRefused(
            "An erasure needs a reason (the request or ticket it answers): it goes in the "
            "audit log."
        )
    if actor is not None and actor.pk == user.pk:
        raise ErasureRefused("Nobody can erase their own account: ask another admin.")
    user_model = get_user_model()
    user = user_model.objects.select_for_update().get(pk=user.pk)
    if user.username == ERASED_USERNAME.format(pk=user.pk):
        raise ErasureRefused(f"{user.username} was erased already; there is nothing left to erase.")
    if reapplying is None:
        refuse_if_held(user, f"The account {user.get_username()}")

    # Counted first: each app's rows take their own keys with them as they go.
    keys = datakeys.key_count(user.pk)
    erased: dict[str, int] = {}
    for _receiver, counts in user_erasing.send(sender=user_model, user=user, actor=actor):
        for kind, count in (counts or {}).items():
            erased[kind] = erased.get(kind, 0) + count
    devices = TOTPDevice.objects.filter(user=user).delete()[0]
    BackupCodeDevice.objects.filter(user=user).delete()
    sessions = end_all_sessions(user)
    username = user.get_username()
    user.username = ERASED_USERNAME.format(pk=user.pk)
    user.email = user.first_name = user.last_name = ""
    user.is_active = user.is_staff = user.is_superuser = False
    user.set_unusable_password()
    user.save()
    user.groups.clear()
    user.user_permissions.clear()
    # Last but the audit event, inside the transaction: should the commit fail, the rows
    # stay but read as erased.
    datakeys.destroy_owner(user.pk, note=reapplying or {"joined_at": user.date_joined.isoformat()})
    erased["data_keys"] = keys
    record(
        "user.erased",
        actor=actor,
        request=request,
        target=user,
        username=username,
        reason=reason,
        **{f"{kind}_count": count for kind, count in erased.items()},
        devices_removed=devices,
        sessions_ended=sessions,
        **({"reapplied_after_restore": True} if reapplying else {}),
    )
    return erased


# --- Bringing a restored database up to date -------------------------------------------------


@dataclass
class Reapplied:
    users: int = 0
    scopes: dict[str, int] = field(default_factory=dict)


@transaction.atomic
def reapply_erasures() -> Reapplied:
    """Erase again, in a database restored from a backup, what was erased after that backup
    was made, as the key store noted it: users (when the account is the same one: same id
    and joining time) and single scopes (conversations, through the eraser their app
    registered). Their content already reads as erased; this removes the rows and the
    accounts' details too."""
    result = Reapplied()
    user_model = get_user_model()
    for owner, note in sorted(datakeys.erased_owners().items()):
        user = user_model.objects.filter(pk=owner).first()
        if user is None or user.username == ERASED_USERNAME.format(pk=owner):
            continue
        if note.get("joined_at") != user.date_joined.isoformat():
            continue  # another account that was given the same id later
        erase_user(
            actor=None,
            user=user,
            reason=f"erased at {note.get('erased_at', '?')}, after the backup restored",
            reapplying=note,
        )
        result.users += 1
    for ref in datakeys.erased_scopes():
        found = datakeys.scope_eraser(ref.scope)
        if found is None:
            continue
        prefix, eraser = found
        removed = eraser(ref.owner, ref.scope.removeprefix(prefix))
        if removed:
            kind = prefix.rstrip("-")
            result.scopes[kind] = result.scopes.get(kind, 0) + removed
    return result
