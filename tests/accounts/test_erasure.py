"""Erasing a user (admin or command) and a conversation (its owner): the rows go, the data
keys are destroyed so that a copy of the database taken before cannot show them either, and
a legal hold stops both."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from accounts.erasure import ErasureRefused, erase_user, place_legal_hold
from accounts.models import LegalHold, TOTPDevice
from audit.models import AuditEvent
from chat import services
from chat.models import Conversation
from core import crypto, datakeys
from tests.support.personas import login_2fa

pytestmark = pytest.mark.django_db

IP = "10.6.6.7"
USERS = "/admin/auth/user/"
HOLDS = "/admin/accounts/legalhold/"
SECRET = "The merger with Globex closes on 14 March"


def a_conversation(user, content=SECRET):
    turn = services.start_turn(actor=user, conversation_id=None, content=content, model_name="m")
    services.finish_answer(message_id=turn.answer.pk, content="Noted.", finish_reason="stop")
    return turn.conversation


def raw_titles() -> list[str]:
    """The stored titles as a database dump holds them."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT title FROM "chat_conversation"')
        return [row[0] for row in cursor.fetchall()]


def erase_command(*args) -> str:
    out = io.StringIO()
    call_command("erase_user", *args, stdout=out)
    return out.getvalue()


def test_erase_user_removes_their_content_and_keys_and_leaves_an_empty_shell(
    employee, other_employee
):
    a_conversation(employee)
    a_conversation(employee, "Second thoughts")
    kept = a_conversation(other_employee, "Budget for 2027")
    dump = raw_titles()
    TOTPDevice.objects.create(user=employee, confirmed=True)

    output = erase_command("alice", "--reason", "erasure request 2026-118")

    assert "Erased alice: 2 conversations, 4 messages, 0 documents; destroyed 2 data keys" in output
    assert not Conversation.objects.filter(user=employee).exists()
    assert Conversation.objects.get(pk=kept.pk).title == "Budget for 2027"
    shell = get_user_model().objects.get(pk=employee.pk)
    assert shell.username == f"erased-{employee.pk}"
    assert (shell.is_active, shell.email, shell.has_usable_password()) == (False, "", False)
    assert not shell.groups.exists() and not TOTPDevice.objects.filter(user=shell).exists()
    # What a database backup taken before the erasure holds no longer opens.
    assert sorted(crypto.decrypt(token) for token in dump) == sorted(
        [datakeys.ERASED, datakeys.ERASED, "Budget for 2027"]
    )
    event = AuditEvent.objects.get(action="user.erased")
    assert event.target == f"auth.user:{employee.pk}"
    assert event.details["username"] == "alice"
    assert event.details["reason"] == "erasure request 2026-118"
    assert event.details["conversations_count"] == 2
    assert event.details["data_keys_count"] == 2
    assert "Globex" not in str(event.details)


def test_erase_user_without_a_reason_or_of_an_unknown_user_is_refused(employee):
    with pytest.raises(CommandError, match="needs a reason"):
        erase_command("alice", "--reason", "  ")
    with pytest.raises(CommandError, match="There is no user 'alicia'"):
        erase_command("alicia", "--reason", "request")
    assert get_user_model().objects.get(pk=employee.pk).username == "alice"


def test_nobody_erases_their_own_account(admin_user):
    with pytest.raises(ErasureRefused, match="Nobody can erase their own account"):
        erase_user(actor=admin_user, user=admin_user, reason="tidy up")


def test_a_user_under_legal_hold_is_not_erased_and_the_refusal_names_the_case(
    employee, compliance_officer
):
    conversation = a_conversation(employee)
    place_legal_hold(actor=compliance_officer, user=employee, case_reference="CASE-2026-7")

    with pytest.raises(CommandError, match=r"under a legal hold \(case CASE-2026-7\)"):
        erase_command("alice", "--reason", "erasure request")

    assert Conversation.objects.get(pk=conversation.pk).title == SECRET
    assert not AuditEvent.objects.filter(action="user.erased").exists()


def test_deleting_a_conversation_destroys_its_key_so_an_old_copy_shows_it_erased(
    employee_client, employee
):
    conversation = a_conversation(employee)
    other = a_conversation(employee, "Lunch at noon")
    dump = raw_titles()

    response = employee_client.post(
        f"/chat/api/conversations/{conversation.pk}/delete", REMOTE_ADDR=IP, secure=True
    )

    assert response.status_code == 200
    assert not datakeys.exists(datakeys.conversation_key(employee.pk, conversation.pk))
    assert sorted(crypto.decrypt(token) for token in dump) == sorted(
        [datakeys.ERASED, "Lunch at noon"]
    )
    assert Conversation.objects.get(pk=other.pk).title == "Lunch at noon"
    assert AuditEvent.objects.filter(action="conversation.deleted").count() == 1


def test_a_conversation_under_legal_hold_is_not_deleted_and_the_user_is_told_why(
    employee_client, employee, compliance_officer
):
    conversation = a_conversation(employee)
    place_legal_hold(actor=compliance_officer, user=employee, case_reference="CASE-9")

    response = employee_client.post(
        f"/chat/api/conversations/{conversation.pk}/delete", REMOTE_ADDR=IP, secure=True
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "held"
    assert "legal hold" in response.json()["error"]["detail"]
    assert Conversation.objects.get(pk=conversation.pk).title == SECRET


def test_an_admin_erases_a_user_with_a_reason_in_the_admin(admin_client_secure, employee):
    a_conversation(employee)
    asked = admin_client_secure.post(
        USERS, {"action": "erase", "_selected_action": [employee.pk]}, REMOTE_ADDR=IP, secure=True
    )
    assert asked.status_code == 200
    assert "This cannot be undone" in asked.content.decode()

    unconfirmed = admin_client_secure.post(
        USERS,
        {"action": "erase", "_selected_action": [employee.pk], "confirm": "yes", "reason": "x"},
        REMOTE_ADDR=IP,
        secure=True,
    )
    assert "Tick the box to confirm" in unconfirmed.content.decode()
    assert Conversation.objects.filter(user=employee).exists()

    admin_client_secure.post(
        USERS,
        {
            "action": "erase",
            "_selected_action": [employee.pk],
            "confirm": "yes",
            "reason": "erasure request 2026-119",
            "confirm_final": "on",
        },
        REMOTE_ADDR=IP,
        secure=True,
    )

    assert not Conversation.objects.filter(user=employee).exists()
    event = AuditEvent.objects.get(action="user.erased")
    assert event.actor_username == "root-admin"
    assert event.details["reason"] == "erasure request 2026-119"


def test_the_admin_user_page_says_when_a_legal_hold_is_in_place(
    admin_client_secure, employee, compliance_officer
):
    place_legal_hold(actor=compliance_officer, user=employee, case_reference="CASE-2026-7")

    page = admin_client_secure.get(
        f"{USERS}{employee.pk}/change/", REMOTE_ADDR=IP, secure=True
    ).content.decode()
    listing = admin_client_secure.get(USERS, REMOTE_ADDR=IP, secure=True).content.decode()

    assert "Legal hold in place for alice (case CASE-2026-7" in page
    assert "in place" in listing


def test_compliance_places_and_lifts_a_hold_in_the_admin_and_both_are_recorded(
    compliance_client, employee
):
    response = compliance_client.post(
        f"{HOLDS}add/",
        {"user": employee.pk, "case_reference": "CASE-2026-7"},
        REMOTE_ADDR=IP,
        secure=True,
    )
    assert response.status_code == 302
    hold = LegalHold.objects.get()
    assert (hold.user, hold.placed_by.username, hold.lifted_at) == (employee, "carol", None)

    compliance_client.post(
        HOLDS, {"action": "lift", "_selected_action": [hold.pk]}, REMOTE_ADDR=IP, secure=True
    )

    hold.refresh_from_db()
    assert hold.lifted_at is not None and hold.lifted_by.username == "carol"
    placed, lifted = AuditEvent.objects.filter(action__startswith="legal_hold.").order_by(
        "sequence"
    )
    assert (placed.action, placed.details["case_reference"]) == ("legal_hold.placed", "CASE-2026-7")
    assert (lifted.action, lifted.actor_username) == ("legal_hold.lifted", "carol")


def test_an_admin_who_is_not_in_compliance_cannot_place_a_hold(admin_client_secure, employee):
    response = admin_client_secure.post(
        f"{HOLDS}add/",
        {"user": employee.pk, "case_reference": "CASE-1"},
        REMOTE_ADDR=IP,
        secure=True,
    )

    assert response.status_code == 403
    assert not LegalHold.objects.exists()


def test_a_hold_needs_a_case_reference(compliance_officer, employee):
    with pytest.raises(ValueError, match="needs a case reference"):
        place_legal_hold(actor=compliance_officer, user=employee, case_reference=" \u200b ")


def test_the_erased_users_sessions_end(employee):
    client = Client()
    login_2fa(client, employee)
    assert client.get("/accounts/", REMOTE_ADDR=IP, secure=True).status_code == 200

    erase_user(actor=None, user=employee, reason="erasure request")

    assert client.get("/accounts/", REMOTE_ADDR=IP, secure=True).status_code == 302


# --- A restored database brought up to date ---------------------------------------------------
# As after restoring a backup made before the erasures: the rows are there, the keys are
# gone, and the key store noted why.


def reapply() -> str:
    out = io.StringIO()
    call_command("reapply_erasures", stdout=out)
    return out.getvalue()


def test_reapplying_removes_conversations_and_users_erased_after_the_backup(
    employee, other_employee
):
    gone = a_conversation(employee, "Deleted after the backup")
    kept = a_conversation(employee, "Still here")
    a_conversation(other_employee, "Erased with bob")
    datakeys.destroy(datakeys.conversation_key(employee.pk, gone.pk))
    datakeys.destroy_owner(
        other_employee.pk, note={"joined_at": other_employee.date_joined.isoformat()}
    )

    output = reapply()

    assert "Erasures re-applied: 1 users, 1 conversations." in output
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    bob = get_user_model().objects.get(pk=other_employee.pk)
    assert bob.username == f"erased-{bob.pk}" and not bob.is_active
    event = AuditEvent.objects.get(action="user.erased")
    assert event.details["reapplied_after_restore"] is True
    assert reapply().startswith("Erasures re-applied: 0 users.")


def test_reapplying_spares_a_later_account_that_was_given_the_same_id(employee):
    a_conversation(employee)
    datakeys.destroy_owner(employee.pk, note={"joined_at": "2020-01-01T00:00:00+00:00"})

    reapply()

    assert get_user_model().objects.get(pk=employee.pk).username == "alice"


def test_an_answer_is_never_sealed_under_a_key_made_for_it(employee):
    conversation = a_conversation(employee)
    datakeys.destroy(datakeys.conversation_key(employee.pk, conversation.pk))

    with pytest.raises(crypto.DecryptionError, match="same DATA_KEY_DIR"):
        services.start_turn(
            actor=employee, conversation_id=conversation.pk, content="More", model_name="m"
        )


def test_start_up_refuses_an_empty_key_store_when_sealed_content_exists(
    employee, settings, tmp_path
):
    a_conversation(employee)
    settings.DATA_KEY_DIR = tmp_path / "not-mounted"

    with pytest.raises(crypto.DecryptionError, match="empty or missing: point DATA_KEY_DIR"):
        crypto.check_keyring_opens_stored_data()


def test_deleting_a_user_outright_leaves_none_of_their_keys(employee, admin_user):
    conversation = a_conversation(employee)
    user_id = employee.pk
    assert datakeys.key_count(user_id) == 1

    employee.delete()

    assert not datakeys.exists(datakeys.conversation_key(user_id, conversation.pk))
    assert datakeys.key_count(user_id) == 0


def test_a_user_under_legal_hold_cannot_be_deleted_in_the_admin_either(
    admin_client_secure, employee, compliance_officer
):
    a_conversation(employee)
    place_legal_hold(actor=compliance_officer, user=employee, case_reference="CASE-3")

    one = admin_client_secure.post(
        f"{USERS}{employee.pk}/delete/", {"post": "yes"}, REMOTE_ADDR=IP, secure=True
    )
    bulk = admin_client_secure.post(
        USERS,
        {"action": "delete_selected", "_selected_action": [employee.pk], "post": "yes"},
        REMOTE_ADDR=IP,
        secure=True,
    )

    assert one.status_code == 403
    assert bulk.status_code == 403
    assert get_user_model().objects.filter(pk=employee.pk).exists()
    assert Conversation.objects.get(user=employee).title == SECRET
