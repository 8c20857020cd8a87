"""Supervised access ("break-glass"): the only way anyone reads another person's chats.

A member of Compliance asks to read one user's conversations for some hours and says why
(``request_access``). A second person, from the group SUPERVISED_ACCESS_APPROVERS names,
approves or refuses (``approve``, ``refuse``); nobody decides on their own request or on a
request about themselves. An approved request opens a read-only window from the approval
for the hours asked, for the requester alone; each reading (``read_conversations``,
``read_conversation``) is recorded as access.used and counted on the request. When the
window has closed, the user sees on their account page when and why their history was
read (``ended_accesses_of``).

Each function that changes data writes its audit event in the same transaction.
"""

import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.access import READERS_GROUP
from audit.log import record
from chat.models import Conversation, Message, SupervisedAccess

JUSTIFICATION_MIN = 20
JUSTIFICATION_MAX = 2000
REFUSAL_REASON_MAX = 1000


class SupervisionError(Exception):
    """A request, decision or reading that is not allowed; the message says why and what to
    do instead, for the person who tried."""


def may_request(user) -> bool:
    """Members of Compliance ask for supervised access."""
    return bool(
        user.is_authenticated and user.is_active and user.groups.filter(name=READERS_GROUP).exists()
    )


def may_approve(user) -> bool:
    """Members of the approvers group decide on requests (never their own)."""
    return bool(
        user.is_authenticated
        and user.is_active
        and user.groups.filter(name=settings.SUPERVISED_ACCESS_APPROVERS).exists()
    )


def _clean_text(text: str) -> str:
    return "\n".join(line.rstrip() for line in str(text).strip().splitlines())


@transaction.atomic
def request_access(
    *, actor, subject_username: str, justification: str, hours: int, request=None
) -> SupervisedAccess:
    """A pending request by ``actor`` to read ``subject_username``'s conversations."""
    if not may_request(actor):
        raise SupervisionError("Only members of Compliance can ask to read a user's conversations.")
    subject = get_user_model().objects.filter(username=subject_username.strip()).first()
    if subject is None:
        raise SupervisionError(f"There is no user {subject_username.strip()!r}. Check the name.")
    if subject.pk == actor.pk:
        raise SupervisionError("You cannot ask to read your own conversations this way.")
    justification = _clean_text(justification)
    if len(justification) < JUSTIFICATION_MIN:
        raise SupervisionError(
            f"Say why in at least {JUSTIFICATION_MIN} characters: the approver decides on it, "
            "and the user will read it."
        )
    if len(justification) > JUSTIFICATION_MAX:
        raise SupervisionError(
            f"Keep the justification within {JUSTIFICATION_MAX} characters "
            f"(it has {len(justification)}); refer to the case file for the rest."
        )
    if not 1 <= hours <= settings.SUPERVISED_ACCESS_MAX_HOURS:
        raise SupervisionError(
            f"Ask for 1 to {settings.SUPERVISED_ACCESS_MAX_HOURS} hours; for longer, ask again "
            "when this access ends."
        )
    access = SupervisedAccess.objects.create(
        subject=subject, requested_by=actor, justification=justification, hours=hours
    )
    record(
        "access.requested",
        actor=actor,
        request=request,
        target=subject,
        access=str(access.id),
        hours=hours,
        justification=justification,
    )
    return access


def _pending_for_decision(actor, access_id) -> SupervisedAccess:
    access = SupervisedAccess.objects.select_for_update().filter(pk=access_id).first()
    if access is None:
        raise SupervisionError("That request does not exist.")
    if not may_approve(actor):
        raise SupervisionError(
            f"Only members of {settings.SUPERVISED_ACCESS_APPROVERS} can approve or refuse "
            "requests."
        )
    if access.requested_by_id == actor.pk:
        raise SupervisionError(
            "You asked for this access yourself: another approver must decide on it."
        )
    if access.subject_id == actor.pk:
        raise SupervisionError("This request is about you: another approver must decide on it.")
    if access.status != SupervisedAccess.Status.PENDING:
        raise SupervisionError(f"This request was already {access.status}.")
    return access


@transaction.atomic
def approve(*, actor, access_id, request=None) -> SupervisedAccess:
    """Open the reading window of a pending request, from now for the hours it asked."""
    access = _pending_for_decision(actor, access_id)
    now = timezone.now()
    access.status = SupervisedAccess.Status.APPROVED
    access.decided_by = actor
    access.decided_at = now
    access.ends_at = now + datetime.timedelta(hours=access.hours)
    access.save(update_fields=["status", "decided_by", "decided_at", "ends_at"])
    record(
        "access.approved",
        actor=actor,
        request=request,
        target=access.subject,
        access=str(access.id),
        requested_by=access.requested_by.get_username(),
        ends_at=access.ends_at,
    )
    return access


@transaction.atomic
def refuse(*, actor, access_id, reason: str, request=None) -> SupervisedAccess:
    """Refuse a pending request, saying why (the requester sees the reason)."""
    reason = _clean_text(reason)
    if not reason:
        raise SupervisionError("Say why you refuse: the requester will read it.")
    if len(reason) > REFUSAL_REASON_MAX:
        raise SupervisionError(f"Keep the reason within {REFUSAL_REASON_MAX} characters.")
    access = _pending_for_decision(actor, access_id)
    access.status = SupervisedAccess.Status.REFUSED
    access.decided_by = actor
    access.decided_at = timezone.now()
    access.refusal_reason = reason
    access.save(update_fields=["status", "decided_by", "decided_at", "refusal_reason"])
    record(
        "access.refused",
        actor=actor,
        request=request,
        target=access.subject,
        access=str(access.id),
        requested_by=access.requested_by.get_username(),
        reason=reason,
    )
    return access


def open_access(*, actor, access_id) -> SupervisedAccess:
    """The approved, still open access ``actor`` asked for; SupervisionError otherwise."""
    access = SupervisedAccess.objects.select_related("subject").filter(pk=access_id).first()
    if access is None or access.requested_by_id != actor.pk or not may_request(actor):
        raise SupervisionError("You have no access to these conversations.")
    if access.status == SupervisedAccess.Status.PENDING:
        raise SupervisionError("This request has not been approved yet.")
    if access.status == SupervisedAccess.Status.REFUSED:
        raise SupervisionError("This request was refused.")
    if not access.is_open():
        ended = timezone.localtime(access.ends_at).strftime("%Y-%m-%d %H:%M %Z")
        raise SupervisionError(f"This access ended at {ended}. To read more, make a new request.")
    return access


def _count_use(access: SupervisedAccess, now) -> None:
    SupervisedAccess.objects.filter(pk=access.pk).update(
        times_used=F("times_used") + 1, last_used_at=now
    )
    SupervisedAccess.objects.filter(pk=access.pk, first_used_at__isnull=True).update(
        first_used_at=now
    )


@transaction.atomic
def read_conversations(*, actor, access_id, request=None):
    """The subject's conversations (newest first), read under an open access."""
    access = open_access(actor=actor, access_id=access_id)
    conversations = list(Conversation.objects.filter(user=access.subject))
    _count_use(access, timezone.now())
    record(
        "access.used",
        actor=actor,
        request=request,
        target=access.subject,
        access=str(access.id),
        view="list",
        conversation_count=len(conversations),
    )
    return access, conversations


@transaction.atomic
def read_conversation(*, actor, access_id, conversation_id, request=None):
    """One of the subject's conversations with its messages, read under an open access."""
    access = open_access(actor=actor, access_id=access_id)
    conversation = Conversation.objects.filter(pk=conversation_id, user=access.subject).first()
    if conversation is None:
        raise SupervisionError("That conversation is not one of this user's.")
    messages = list(Message.objects.filter(conversation=conversation))
    _count_use(access, timezone.now())
    record(
        "access.used",
        actor=actor,
        request=request,
        target=access.subject,
        access=str(access.id),
        view="conversation",
        conversation=str(conversation.id),
        message_count=len(messages),
    )
    return access, conversation, messages


def requests_by(user):
    return SupervisedAccess.objects.filter(requested_by=user).select_related("subject")


def awaiting_decision_by(user):
    """Pending requests ``user`` may decide on: not their own, not about them."""
    if not may_approve(user):
        return SupervisedAccess.objects.none()
    return (
        SupervisedAccess.objects.filter(status=SupervisedAccess.Status.PENDING)
        .exclude(requested_by=user)
        .exclude(subject=user)
        .select_related("subject", "requested_by")
    )


def ended_accesses_of(user):
    """Approved accesses to ``user``'s conversations whose time is over: what their account
    page shows them (while one is still open, an investigation is not told)."""
    return SupervisedAccess.objects.filter(
        subject=user, status=SupervisedAccess.Status.APPROVED, ends_at__lte=timezone.now()
    ).order_by("-ends_at")
