"""The conversation list: pinned first, archived apart, paged so thousands stay fast."""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from chat import services
from chat.models import Conversation

pytestmark = pytest.mark.django_db


def many_conversations(user, count):
    now = timezone.now()
    return Conversation.objects.bulk_create(
        Conversation(
            user=user, title=f"Conversation {n}", updated_at=now - datetime.timedelta(minutes=n)
        )
        for n in range(count)
    )


def titles(page):
    return [c.title for c in page.conversations]


def test_pages_follow_each_other_without_gaps_or_repeats(employee):
    many_conversations(employee, 120)

    seen, after = [], None
    while True:
        page = services.conversation_page(employee, after=after, limit=50)
        seen += titles(page)
        if page.next is None:
            break
        after = page.next

    assert seen == [f"Conversation {n}" for n in range(120)]


def test_pinned_conversations_come_first_and_archived_ones_apart(employee):
    rows = many_conversations(employee, 5)
    services.set_flag(actor=employee, conversation=rows[3], flag="pinned", value=True)
    services.set_flag(actor=employee, conversation=rows[1], flag="archived", value=True)

    listed = titles(services.conversation_page(employee))
    archived = titles(services.conversation_page(employee, archived=True))

    assert listed == ["Conversation 3", "Conversation 0", "Conversation 2", "Conversation 4"]
    assert archived == ["Conversation 1"]
    actions = list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True))
    assert actions[-2:] == ["conversation.pinned", "conversation.archived"]


def test_archiving_a_pinned_conversation_unpins_it(employee):
    (row,) = many_conversations(employee, 1)
    services.set_flag(actor=employee, conversation=row, flag="pinned", value=True)
    services.set_flag(actor=employee, conversation=row, flag="archived", value=True)
    services.set_flag(actor=employee, conversation=row, flag="archived", value=False)

    row.refresh_from_db()
    assert (row.pinned, row.archived) == (False, False)
    assert AuditEvent.objects.filter(action="conversation.unarchived").count() == 1


def test_the_list_api_pages_and_refuses_bad_positions(employee_client, employee, other_employee):
    many_conversations(employee, 3)
    many_conversations(other_employee, 2)

    first = employee_client.get("/chat/api/conversations?limit=2", secure=True).json()
    second = employee_client.get(
        "/chat/api/conversations", {"limit": 2, "after": first["next"]}, secure=True
    ).json()
    bad = employee_client.get("/chat/api/conversations?after=yesterday", secure=True)
    huge = employee_client.get("/chat/api/conversations?limit=100000", secure=True)

    assert [c["title"] for c in first["conversations"]] == ["Conversation 0", "Conversation 1"]
    assert [c["title"] for c in second["conversations"]] == ["Conversation 2"]
    assert second["next"] is None
    assert bad.status_code == 400
    assert huge.status_code == 400


def test_pin_and_archive_through_the_api_only_for_your_own(
    employee_client, employee, other_employee
):
    (mine,) = many_conversations(employee, 1)
    (theirs,) = many_conversations(other_employee, 1)

    pinned = employee_client.post(f"/chat/api/conversations/{mine.pk}/pin", secure=True)
    refused = employee_client.post(f"/chat/api/conversations/{theirs.pk}/archive", secure=True)

    assert pinned.json()["pinned"] is True
    assert refused.status_code == 404
    theirs.refresh_from_db()
    assert theirs.archived is False
