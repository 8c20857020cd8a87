"""Retention: conversations past their owner's period are erased (rows and data keys), in
recorded batches, except under a legal hold; group periods override the site's."""

import datetime
import io

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.erasure import lift_legal_hold, place_legal_hold
from audit.models import AuditEvent
from chat import services
from chat.models import Conversation, Message
from core import datakeys
from core.env import env_int_map
from tests.support import personas

pytestmark = pytest.mark.django_db


def a_conversation(user, *, days_old: int, content="Quarterly numbers") -> Conversation:
    turn = services.start_turn(actor=user, conversation_id=None, content=content, model_name="m")
    services.finish_answer(message_id=turn.answer.pk, content="Noted.", finish_reason="stop")
    Conversation.objects.filter(pk=turn.conversation.pk).update(
        updated_at=timezone.now() - datetime.timedelta(days=days_old)
    )
    return turn.conversation


def apply_retention(*args) -> str:
    out = io.StringIO()
    call_command("apply_retention", *args, stdout=out)
    return out.getvalue()


def runs() -> list[dict]:
    return [
        event.details
        for event in AuditEvent.objects.filter(action="retention.applied").order_by("sequence")
    ]


def test_conversations_past_the_period_are_erased_with_their_keys_and_recent_ones_kept(
    settings, employee, other_employee
):
    settings.CHAT_RETENTION_DAYS = 90
    old = a_conversation(employee, days_old=91)
    recent = a_conversation(employee, days_old=89)
    others_old = a_conversation(other_employee, days_old=400)

    output = apply_retention()

    assert set(Conversation.objects.values_list("pk", flat=True)) == {recent.pk}
    assert not Message.objects.filter(conversation_id__in=[old.pk, others_old.pk]).exists()
    assert not datakeys.exists(datakeys.conversation_key(employee.pk, old.pk))
    assert datakeys.exists(datakeys.conversation_key(employee.pk, recent.pk))
    assert "Retention applied: 2 conversations (4 messages) erased in 1 batches" in output
    batch, summary = runs()
    assert (batch["conversations_count"], batch["messages_count"]) == (2, 4)
    assert summary["done"] is True and summary["held_count"] == 0


def test_a_group_period_overrides_the_sites_and_the_longest_of_several_wins(settings):
    settings.CHAT_RETENTION_DAYS = 365
    settings.CHAT_RETENTION_GROUP_DAYS = {"Legal": 3650, "Interns": 30}
    for name in ("Legal", "Interns"):
        Group.objects.create(name=name)
    intern = personas.make_employee("ivan")
    intern.groups.add(Group.objects.get(name="Interns"))
    lawyer_and_intern = personas.make_employee("lena")
    lawyer_and_intern.groups.add(*Group.objects.filter(name__in=["Legal", "Interns"]))
    plain = personas.make_employee("paul")
    interns_month_old = a_conversation(intern, days_old=31)
    lenas_two_years_old = a_conversation(lawyer_and_intern, days_old=730)
    pauls_two_years_old = a_conversation(plain, days_old=730)
    pauls_month_old = a_conversation(plain, days_old=31)

    apply_retention()

    remaining = set(Conversation.objects.values_list("pk", flat=True))
    assert remaining == {lenas_two_years_old.pk, pauls_month_old.pk}
    assert interns_month_old.pk not in remaining and pauls_two_years_old.pk not in remaining


def test_a_legal_hold_keeps_a_users_old_conversations_until_it_is_lifted(
    settings, employee, other_employee, compliance_officer
):
    settings.CHAT_RETENTION_DAYS = 30
    held = a_conversation(employee, days_old=400, content="Held for the case")
    not_held = a_conversation(other_employee, days_old=400)
    hold = place_legal_hold(actor=compliance_officer, user=employee, case_reference="CASE-2026-7")

    output = apply_retention()

    assert Conversation.objects.get(pk=held.pk).title == "Held for the case"
    assert not Conversation.objects.filter(pk=not_held.pk).exists()
    assert "1 kept under a legal hold" in output
    assert runs()[-1]["held_count"] == 1

    lift_legal_hold(actor=compliance_officer, hold=hold)
    apply_retention()

    assert not Conversation.objects.filter(pk=held.pk).exists()
    assert not datakeys.exists(datakeys.conversation_key(employee.pk, held.pk))


def test_an_interrupted_run_keeps_what_it_did_and_the_next_run_carries_on(settings, employee):
    settings.CHAT_RETENTION_DAYS = 30
    for _ in range(5):
        a_conversation(employee, days_old=100)

    first = apply_retention("--batch-size", "2", "--max-batches", "2")

    assert Conversation.objects.count() == 1
    assert "More conversations are due: run the command again" in first
    assert [run.get("conversations_count") for run in runs()] == [2, 2, 4]
    assert runs()[-1]["done"] is False

    apply_retention("--batch-size", "2")

    assert Conversation.objects.count() == 0
    assert runs()[-1]["done"] is True


def test_a_run_with_nothing_due_is_recorded_and_says_when_no_period_is_set(employee):
    a_conversation(employee, days_old=4000)

    output = apply_retention()

    assert "No retention period is set" in output
    assert Conversation.objects.count() == 1
    (summary,) = runs()
    assert (summary["conversations_count"], summary["batch_count"]) == (0, 0)


def test_a_bad_batch_size_is_refused_before_anything_is_erased(settings, employee):
    settings.CHAT_RETENTION_DAYS = 1
    a_conversation(employee, days_old=10)

    with pytest.raises(CommandError, match="whole numbers from 1 up"):
        apply_retention("--batch-size", "0")

    assert Conversation.objects.count() == 1


@pytest.mark.parametrize(
    ("value", "problem"),
    [("Legal", "name=number"), ("Legal=-1", "at least 0"), ("Legal=1,Legal=2", "twice")],
)
def test_a_malformed_group_period_stops_start_up_with_the_fix(value, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        env_int_map("CHAT_RETENTION_GROUP_DAYS", environ={"CHAT_RETENTION_GROUP_DAYS": value})


def test_group_periods_are_read_as_names_and_days():
    environ = {"CHAT_RETENTION_GROUP_DAYS": "Legal=3650, Interns = 30"}

    assert env_int_map("CHAT_RETENTION_GROUP_DAYS", environ=environ) == {
        "Legal": 3650,
        "Interns": 30,
    }
