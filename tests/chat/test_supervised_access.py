"""Supervised access: Compliance asks, a second person from the approvers group decides, the
requester alone reads for the time granted, every step and every reading is audited, and
the user is told afterwards. Nobody reads anyone's chats any other way."""

import datetime
import importlib

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from accounts.roles import may_assign, may_manage
from audit.models import AuditEvent
from chat import services, supervision
from chat.models import Conversation, Message, SupervisedAccess
from chat.supervision import SupervisionError
from tests.support.personas import login_2fa, make_compliance_officer, make_employee

pytestmark = pytest.mark.django_db

IP = "10.8.8.8"
WHY = "Case 2026-114: suspected leak of the pricing sheet, HR and legal informed."


def approvers_group() -> Group:
    # Migrate creates it; a transactional test's flush elsewhere in the run may not.
    return Group.objects.get_or_create(name=settings.SUPERVISED_ACCESS_APPROVERS)[0]


@pytest.fixture
def approver():
    user = make_compliance_officer("dana")
    user.groups.add(approvers_group())
    return user


@pytest.fixture
def subject_conversation(employee):
    turn = services.start_turn(
        actor=employee,
        conversation_id=None,
        content="Can you summarise the pricing sheet?",
        model_name="m",
    )
    services.finish_answer(
        message_id=turn.answer.pk, content="<b>Prices</b> went up.", finish_reason="stop"
    )
    return turn.conversation


def ask(actor, subject, hours=2):
    return supervision.request_access(
        actor=actor, subject_username=subject.username, justification=WHY, hours=hours
    )


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


# --- services --------------------------------------------------------------------------------


def test_a_request_is_pending_and_recorded_with_its_justification(compliance_officer, employee):
    access = ask(compliance_officer, employee)

    assert access.status == SupervisedAccess.Status.PENDING
    (event,) = events("access.requested")
    assert event.actor == compliance_officer
    assert event.target == f"auth.user:{employee.pk}"
    assert event.details["justification"] == WHY
    assert event.details["hours"] == 2


@pytest.mark.parametrize(
    ("username", "justification", "hours", "says"),
    [
        ("nobody", WHY, 2, "There is no user 'nobody'"),
        ("alice", "because", 2, "at least 20 characters"),
        ("alice", "x" * 2001, 2, "within 2000 characters"),
        ("alice", WHY, 0, "Ask for 1 to 72 hours"),
        ("alice", WHY, 73, "Ask for 1 to 72 hours"),
        ("carol", WHY, 2, "your own conversations"),
    ],
)
def test_a_bad_request_is_refused_with_a_sentence(
    compliance_officer, employee, username, justification, hours, says
):
    with pytest.raises(SupervisionError, match=says):
        supervision.request_access(
            actor=compliance_officer,
            subject_username=username,
            justification=justification,
            hours=hours,
        )

    assert not SupervisedAccess.objects.exists()
    assert events("access.requested") == []


def test_only_compliance_may_ask(employee, other_employee, admin_user):
    for actor in (other_employee, admin_user):
        with pytest.raises(SupervisionError, match="Only members of Compliance"):
            ask(actor, employee)


def test_the_requester_can_never_approve_their_own_request(employee, approver):
    # dana is both in Compliance and an approver: still not her own request.
    access = ask(approver, employee)

    with pytest.raises(SupervisionError, match="another approver must decide"):
        supervision.approve(actor=approver, access_id=access.pk)
    with pytest.raises(SupervisionError, match="another approver must decide"):
        supervision.refuse(actor=approver, access_id=access.pk, reason="no")

    access.refresh_from_db()
    assert access.status == SupervisedAccess.Status.PENDING
    assert events("access.approved") == events("access.refused") == []


def test_only_the_approvers_group_decides(compliance_officer, employee, admin_user):
    access = ask(compliance_officer, employee)

    with pytest.raises(SupervisionError, match="Only members of Access approvers"):
        supervision.approve(actor=admin_user, access_id=access.pk)


def test_the_subject_cannot_decide_on_a_request_about_them(compliance_officer, employee):
    employee.groups.add(approvers_group())
    access = ask(compliance_officer, employee)

    with pytest.raises(SupervisionError, match="about you"):
        supervision.approve(actor=employee, access_id=access.pk)


def test_the_approvers_group_is_whatever_the_setting_names(
    settings, compliance_officer, employee, approver
):
    settings.SUPERVISED_ACCESS_APPROVERS = "Data protection office"
    access = ask(compliance_officer, employee)

    with pytest.raises(SupervisionError, match="Only members of Data protection office"):
        supervision.approve(actor=approver, access_id=access.pk)
    approver.groups.add(Group.objects.create(name="Data protection office"))
    assert supervision.approve(actor=approver, access_id=access.pk).status == "approved"


def test_approval_opens_a_window_for_the_hours_asked_and_is_recorded(
    compliance_officer, employee, approver
):
    access = ask(compliance_officer, employee, hours=3)
    before = timezone.now()

    access = supervision.approve(actor=approver, access_id=access.pk)

    assert access.status == SupervisedAccess.Status.APPROVED
    assert access.decided_by == approver
    expected = before + datetime.timedelta(hours=3)
    assert abs((access.ends_at - expected).total_seconds()) < 5
    (event,) = events("access.approved")
    assert event.actor == approver
    assert event.details["requested_by"] == "carol"
    with pytest.raises(SupervisionError, match="already approved"):
        supervision.refuse(actor=approver, access_id=access.pk, reason="changed my mind")


def test_a_refusal_needs_a_reason_and_closes_the_request(compliance_officer, employee, approver):
    access = ask(compliance_officer, employee)

    with pytest.raises(SupervisionError, match="Say why you refuse"):
        supervision.refuse(actor=approver, access_id=access.pk, reason="  ")
    supervision.refuse(actor=approver, access_id=access.pk, reason="No case number on file.")

    (event,) = events("access.refused")
    assert event.details["reason"] == "No case number on file."
    with pytest.raises(SupervisionError, match="was refused"):
        supervision.read_conversations(actor=compliance_officer, access_id=access.pk)
    assert events("access.used") == []


def test_the_approved_requester_reads_and_every_reading_is_recorded(
    compliance_officer, employee, approver, subject_conversation
):
    access = ask(compliance_officer, employee)
    with pytest.raises(SupervisionError, match="not been approved yet"):
        supervision.read_conversations(actor=compliance_officer, access_id=access.pk)
    supervision.approve(actor=approver, access_id=access.pk)

    _, conversations = supervision.read_conversations(actor=compliance_officer, access_id=access.pk)
    _, conversation, messages = supervision.read_conversation(
        actor=compliance_officer, access_id=access.pk, conversation_id=subject_conversation.pk
    )

    assert conversations == [subject_conversation]
    assert conversation == subject_conversation
    assert [m.content for m in messages] == [
        "Can you summarise the pricing sheet?",
        "<b>Prices</b> went up.",
    ]
    listed, opened = events("access.used")
    assert listed.details == {"access": str(access.pk), "view": "list", "conversation_count": 1}
    assert opened.details["conversation"] == str(subject_conversation.pk)
    assert opened.details["message_count"] == 2
    assert "Prices" not in str(opened.details)
    access.refresh_from_db()
    assert access.times_used == 2
    assert access.first_used_at <= access.last_used_at


def test_nobody_else_reads_under_an_access_not_even_the_approver(
    compliance_officer, employee, approver, admin_user, subject_conversation
):
    access = ask(compliance_officer, employee)
    supervision.approve(actor=approver, access_id=access.pk)

    for someone in (approver, admin_user, employee):
        with pytest.raises(SupervisionError, match="no access"):
            supervision.read_conversations(actor=someone, access_id=access.pk)


def test_only_the_subjects_conversations_are_readable(
    compliance_officer, employee, other_employee, approver
):
    access = ask(compliance_officer, employee)
    supervision.approve(actor=approver, access_id=access.pk)
    elsewhere = services.start_turn(
        actor=other_employee, conversation_id=None, content="Private", model_name="m"
    ).conversation

    with pytest.raises(SupervisionError, match="not one of this user's"):
        supervision.read_conversation(
            actor=compliance_officer, access_id=access.pk, conversation_id=elsewhere.pk
        )


def test_reading_ends_when_the_window_does_and_the_user_is_told_then(
    compliance_officer, employee, approver, subject_conversation
):
    access = ask(compliance_officer, employee)
    supervision.approve(actor=approver, access_id=access.pk)
    supervision.read_conversations(actor=compliance_officer, access_id=access.pk)
    # While it is open the user is not told (an investigation would be).
    assert list(supervision.ended_accesses_of(employee)) == []

    SupervisedAccess.objects.filter(pk=access.pk).update(
        ends_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    with pytest.raises(SupervisionError, match="This access ended at"):
        supervision.read_conversations(actor=compliance_officer, access_id=access.pk)
    (told,) = supervision.ended_accesses_of(employee)
    assert told.justification == WHY
    assert told.times_used == 1


# --- pages -------------------------------------------------------------------------------------


def signed_in(user) -> Client:
    client = Client()
    login_2fa(client, user)
    return client


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def post(client, path, data=None):
    return client.post(path, data or {}, REMOTE_ADDR=IP, secure=True)


def test_an_employee_or_an_admin_cannot_open_the_pages(employee, admin_user):
    for user in (employee, admin_user):
        response = get(signed_in(user), "/supervision/")
        assert response.status_code == 403
        assert b"Supervised access is for members of Compliance" in response.content


def test_a_bad_request_form_keeps_what_was_typed_and_says_what_to_fix(compliance_officer):
    response = post(
        signed_in(compliance_officer),
        "/supervision/request",
        {"username": "nobody", "justification": WHY, "hours": "2"},
    )

    assert response.status_code == 400
    assert b"There is no user" in response.content
    assert WHY.encode() in response.content


def test_the_flow_through_the_pages(compliance_officer, employee, approver, subject_conversation):
    requester, deciding = signed_in(compliance_officer), signed_in(approver)
    post(requester, "/supervision/request", {"username": "alice", "justification": WHY, "hours": 1})
    access = SupervisedAccess.objects.get()
    assert WHY.encode() in get(deciding, "/supervision/").content

    assert post(requester, f"/supervision/{access.pk}/approve").status_code == 302
    assert SupervisedAccess.objects.get().status == "pending"
    post(deciding, f"/supervision/{access.pk}/approve")

    listing = get(requester, f"/supervision/{access.pk}/")
    page = get(requester, f"/supervision/{access.pk}/conversations/{subject_conversation.pk}")
    assert listing.status_code == page.status_code == 200
    # Model output is shown as text, never as HTML.
    assert b"&lt;b&gt;Prices&lt;/b&gt; went up." in page.content
    assert get(deciding, f"/supervision/{access.pk}/").status_code == 403
    assert len(events("access.used")) == 2

    SupervisedAccess.objects.update(ends_at=timezone.now() - datetime.timedelta(seconds=1))
    ended = get(requester, f"/supervision/{access.pk}/")
    assert ended.status_code == 403
    assert b"This access ended at" in ended.content
    account = get(signed_in(employee), "/accounts/")
    assert b"Your conversations were read under supervision" in account.content
    assert WHY.encode() in account.content
    assert b"read 2 times" in account.content


def test_the_chat_api_still_shows_nobody_else_s_conversation(
    compliance_officer, approver, employee, subject_conversation
):
    # An approved access opens only the supervised pages, not the chat API.
    access = ask(compliance_officer, employee)
    supervision.approve(actor=approver, access_id=access.pk)

    response = get(
        signed_in(compliance_officer), f"/chat/api/conversations/{subject_conversation.pk}"
    )

    assert response.status_code in (403, 404)


def test_migrate_creates_the_approvers_group(settings):
    migration = importlib.import_module("chat.migrations.0002_supervised_access")
    settings.SUPERVISED_ACCESS_APPROVERS = "Data protection office"

    migration.create_approvers_group(django_apps, None)

    assert Group.objects.filter(name="Data protection office").exists()


def test_an_approver_outside_compliance_may_decide_but_never_read(
    compliance_officer, employee, subject_conversation
):
    outsider = make_employee("erin")
    outsider.groups.add(approvers_group())
    access = ask(compliance_officer, employee)

    supervision.approve(actor=outsider, access_id=access.pk)

    with pytest.raises(SupervisionError, match="no access"):
        supervision.read_conversations(actor=outsider, access_id=access.pk)


def test_only_a_superuser_puts_someone_in_the_approvers_group(group_admin, admin_user, employee):
    group = approvers_group()

    assert not may_assign(group_admin, group)
    assert may_assign(admin_user, group)
    employee.groups.add(group)
    # An approver has a right an admin lacks: only a superuser manages their account.
    assert not may_manage(group_admin, employee)


def test_no_admin_page_shows_conversations_or_messages():
    assert not admin.site.is_registered(Conversation)
    assert not admin.site.is_registered(Message)
    assert not admin.site.is_registered(SupervisedAccess)
