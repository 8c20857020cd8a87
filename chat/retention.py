"""Retention: conversations older than their owner's retention period are erased, as their
owner deleting them would (rows gone, data keys destroyed), except under a legal hold.

A conversation's age is the time since its last message (``updated_at``). The period is
``CHAT_RETENTION_DAYS``, or for members of a group in ``CHAT_RETENTION_GROUP_DAYS`` that
group's (the longest, for members of several); 0 keeps forever.

``apply_retention`` works in batches, each in its own transaction with its own
``retention.applied`` event, so an interrupted run has lost nothing and recorded everything
it erased; the next run carries on with what is still due. A last event sums the run up:
totals, conversations kept under a legal hold, and whether nothing is left to do.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.erasure import held_user_ids
from audit.log import record
from chat.models import Conversation, Message

DEFAULT_BATCH = 500


@dataclass
class RetentionResult:
    batches: int = 0
    conversations: int = 0
    messages: int = 0
    held: int = 0
    done: bool = False
    policies: dict[str, int] = field(default_factory=dict)


def _days_by_user() -> tuple[int, dict[int, int]]:
    """The site's period and, for members of a group with its own, each one's period."""
    overrides = settings.CHAT_RETENTION_GROUP_DAYS
    by_user: dict[int, int] = {}
    members = get_user_model().groups.through.objects.filter(group__name__in=overrides)
    for user_id, group in members.values_list("user_id", "group__name"):
        days = overrides[group]
        current = by_user.get(user_id)
        # 0 keeps forever, the longest of all.
        if current == 0 or days == 0:
            by_user[user_id] = 0
        else:
            by_user[user_id] = max(current or 0, days)
    return settings.CHAT_RETENTION_DAYS, by_user


def due(now: datetime.datetime | None = None):
    """Conversations past their retention period, whoever holds them (held ones included)."""
    now = now or timezone.now()
    site_days, by_user = _days_by_user()
    condition = Q(pk__in=[])
    if site_days:
        condition |= Q(updated_at__lt=now - datetime.timedelta(days=site_days)) & ~Q(
            user_id__in=list(by_user)
        )
    for days in {days for days in by_user.values() if days}:
        users = [user_id for user_id, value in by_user.items() if value == days]
        condition |= Q(user_id__in=users, updated_at__lt=now - datetime.timedelta(days=days))
    return Conversation.objects.filter(condition)


def _erase_batch(now, batch_size: int, number: int) -> tuple[int, int]:
    with transaction.atomic():
        ids = list(
            due(now)
            .exclude(user_id__in=held_user_ids())
            .order_by("updated_at", "pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0, 0
        messages = Message.objects.filter(conversation_id__in=ids).count()
        # Their data keys go too (chat.services.destroy_conversation_key, on post_delete).
        Conversation.objects.filter(pk__in=ids).delete()
        record(
            "retention.applied",
            batch=number,
            conversations_count=len(ids),
            messages_count=messages,
        )
        return len(ids), messages


def apply_retention(
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    now: datetime.datetime | None = None,
    on_batch: Callable[[int, int], None] = lambda conversations, messages: None,
) -> RetentionResult:
    """Erase what is due, ``batch_size`` conversations a transaction, at most ``max_batches``
    batches (None: until nothing is due)."""
    now = now or timezone.now()
    result = RetentionResult(policies={"site": settings.CHAT_RETENTION_DAYS})
    result.policies.update(settings.CHAT_RETENTION_GROUP_DAYS)
    while max_batches is None or result.batches < max_batches:
        conversations, messages = _erase_batch(now, batch_size, result.batches + 1)
        if not conversations:
            break
        result.batches += 1
        result.conversations += conversations
        result.messages += messages
        on_batch(conversations, messages)
        if conversations < batch_size:
            break
    result.held = due(now).filter(user_id__in=held_user_ids()).count()
    result.done = not due(now).exclude(user_id__in=held_user_ids()).exists()
    # The run's summary, also when nothing was due: it shows that retention runs.
    record(
        "retention.applied",
        batch_count=result.batches,
        conversations_count=result.conversations,
        messages_count=result.messages,
        held_count=result.held,
        done=result.done,
        retention_days=result.policies,
    )
    return result
