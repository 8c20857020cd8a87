"""A non-superuser admin cannot take over an account with more rights than their own, nor
give anyone (themselves included) rights they lack; the admin says why."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from accounts.models import TOTPDevice
from accounts.roles import may_manage
from audit.models import AuditEvent
from tests.support.personas import PASSWORD, enrol_totp, login_2fa, make_admin

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
GROUPS = "/admin/auth/group/"
IP = "10.6.6.7"
NEW_PASSWORD = "a brand new passphrase 99"


def post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


@pytest.fixture
def admin_client(group_admin):
    client = Client()
    login_2fa(client, group_admin)
    return client


@pytest.fixture
def superuser():
    user = make_admin("root")
    enrol_totp(user)
    return user


def change_password(client, user):
    return post(
        client,
        f"{USERS}{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )


def reset_two_factor(client, *users):
    return post(
        client,
        USERS,
        {
            "action": "reset_two_factor",
            "_selected_action": [user.pk for user in users],
            "confirm": "yes",
            "reason": "lost phone",
        },
    )


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.wsgi_request._messages)


def test_an_admin_cannot_change_a_superusers_password_and_is_told_why(admin_client, superuser):
    response = change_password(admin_client, superuser)

    assert response.status_code == 403
    page = response.content.decode()
    assert "Only a superuser can change root: they have rights you do not." in page
    superuser.refresh_from_db()
    assert superuser.check_password(PASSWORD)
    denied = AuditEvent.objects.get(action="permission.denied")
    assert denied.actor_username == "adam"
    assert denied.details["path"] == f"{USERS}{superuser.pk}/password/"


def test_an_admin_cannot_change_a_compliance_officers_password(admin_client, compliance_officer):
    response = change_password(admin_client, compliance_officer)

    assert response.status_code == 403
    compliance_officer.refresh_from_db()
    assert compliance_officer.check_password(PASSWORD)


def test_an_admin_still_changes_an_employees_password(admin_client, employee):
    response = change_password(admin_client, employee)

    assert response.status_code == 302
    employee.refresh_from_db()
    assert employee.check_password(NEW_PASSWORD)


def test_a_superuser_changes_a_compliance_officers_password(
    admin_client_secure, compliance_officer
):
    response = change_password(admin_client_secure, compliance_officer)

    assert response.status_code == 302
    compliance_officer.refresh_from_db()
    assert compliance_officer.check_password(NEW_PASSWORD)


def test_resetting_two_step_verification_skips_a_superuser_and_says_so(
    admin_client, superuser, employee
):
    enrol_totp(employee)

    response = reset_two_factor(admin_client, superuser, employee)

    assert response.status_code == 302
    assert TOTPDevice.objects.filter(user=superuser).exists()
    assert not TOTPDevice.objects.filter(user=employee).exists()
    said = messages_of(response)
    assert "Skipped root: only a superuser can change them" in said
    assert "reset for 1 user(s)" in said
    assert [e.target for e in AuditEvent.objects.filter(action="device.reset_by_admin")] == [
        f"auth.user:{employee.pk}"
    ]


def test_resetting_only_a_compliance_officer_resets_nothing(admin_client, compliance_officer):
    enrol_totp(compliance_officer)

    response = reset_two_factor(admin_client, compliance_officer)

    assert TOTPDevice.objects.filter(user=compliance_officer).exists()
    assert "Skipped carol" in messages_of(response)


def test_deactivating_skips_accounts_with_more_rights(
    admin_client, superuser, compliance_officer, employee
):
    response = post(
        admin_client,
        USERS,
        {
            "action": "deactivate",
            "_selected_action": [superuser.pk, compliance_officer.pk, employee.pk],
        },
    )

    assert {
        u.username: u.is_active for u in User.objects.filter(username__in=["root", "carol"])
    } == {
        "root": True,
        "carol": True,
    }
    employee.refresh_from_db()
    assert employee.is_active is False
    assert "Skipped carol, root" in messages_of(response) or "Skipped root, carol" in (
        messages_of(response)
    )


def test_the_change_page_of_a_superuser_is_read_only_and_says_why(admin_client, superuser):
    response = get(admin_client, f"{USERS}{superuser.pk}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Only a superuser can change root: they have rights you do not." in page
    assert 'name="groups"' not in page
    assert 'name="is_active"' not in page
    assert 'name="_save"' not in page


def test_posting_a_change_to_a_superuser_is_refused(admin_client, superuser):
    response = post(
        admin_client,
        f"{USERS}{superuser.pk}/change/",
        {"username": "root", "is_active": "", "groups": []},
    )

    assert response.status_code == 403
    superuser.refresh_from_db()
    assert superuser.is_active is True


def test_an_admin_cannot_put_an_employee_in_compliance(admin_client, employee):
    compliance = Group.objects.get(name="Compliance")
    page = get(admin_client, f"{USERS}{employee.pk}/change/").content.decode()

    response = post(
        admin_client,
        f"{USERS}{employee.pk}/change/",
        {
            "username": "alice",
            "is_active": "on",
            "is_staff": "on",
            "groups": [compliance.pk, Group.objects.get(name="Employees").pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
        },
    )

    assert f'value="{compliance.pk}"' not in page
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not employee.groups.filter(name="Compliance").exists()


def test_an_inactive_compliance_officer_still_has_more_rights_than_an_admin(
    group_admin, compliance_officer
):
    compliance_officer.is_active = False
    compliance_officer.save()

    assert not may_manage(group_admin, compliance_officer)
    assert may_manage(make_admin("root"), compliance_officer)


def test_role_groups_are_read_only_even_for_a_superuser(admin_client_secure):
    admins = Group.objects.get(name="Admins")
    audit_view = Permission.objects.get(codename="view_auditevent")
    before = set(admins.permissions.all())

    page = get(admin_client_secure, f"{GROUPS}{admins.pk}/change/").content.decode()
    change = post(
        admin_client_secure,
        f"{GROUPS}{admins.pk}/change/",
        {"name": "Admins", "permissions": [p.pk for p in before] + [audit_view.pk]},
    )
    delete = post(admin_client_secure, f"{GROUPS}{admins.pk}/delete/", {"post": "yes"})

    assert "Admins is a role group managed by the application" in page
    assert 'name="permissions"' not in page
    assert change.status_code == 403
    assert "role group managed by the application" in change.content.decode()
    assert delete.status_code == 403
    assert set(Group.objects.get(name="Admins").permissions.all()) == before


def test_an_admin_gives_a_group_of_their_own_only_permissions_they_have(admin_client):
    audit_view = Permission.objects.get(codename="view_auditevent")
    view_user = Permission.objects.get(codename="view_user")

    refused = post(
        admin_client, f"{GROUPS}add/", {"name": "Readers", "permissions": [audit_view.pk]}
    )
    allowed = post(
        admin_client, f"{GROUPS}add/", {"name": "Helpdesk", "permissions": [view_user.pk]}
    )

    assert refused.status_code == 200
    assert not Group.objects.filter(name="Readers").exists()
    assert allowed.status_code == 302
    assert list(Group.objects.get(name="Helpdesk").permissions.all()) == [view_user]


def test_an_admin_unlocks_an_employees_sign_in_but_not_a_superusers(
    admin_client, superuser, employee
):
    def fail(username):
        return Client().post(
            "/accounts/login/",
            {"username": username, "password": "wrong password 123"},
            REMOTE_ADDR="10.2.2.9",
            secure=True,
        )

    def sign_in(username):
        return Client().post(
            "/accounts/login/",
            {"username": username, "password": PASSWORD},
            REMOTE_ADDR="10.2.2.9",
            secure=True,
        )

    for _ in range(5):
        fail("alice")
        fail("root")
    assert sign_in("alice").status_code == 429

    response = post(
        admin_client,
        USERS,
        {"action": "unlock_sign_in", "_selected_action": [superuser.pk, employee.pk]},
    )

    assert sign_in("alice").status_code == 302
    assert sign_in("root").status_code == 429
    said = messages_of(response)
    assert "Sign-in unlocked for 1 user(s)" in said
    assert "Skipped root" in said
    (event,) = AuditEvent.objects.filter(action="lockout.cleared")
    assert (event.actor_username, event.target) == ("adam", f"auth.user:{employee.pk}")
