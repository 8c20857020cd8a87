"""Admins see each user's two-step status and can reset it or deactivate the user."""

import pytest
from django.test import Client

from accounts.models import BackupCodeDevice, TOTPDevice
from audit.models import AuditEvent
from tests.support.personas import PASSWORD, enrol_totp, login_2fa

pytestmark = pytest.mark.django_db

USERS = "/admin/auth/user/"
IP = "10.6.6.6"


def post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


@pytest.fixture
def signed_in_employee(employee):
    client = Client()
    login_2fa(client, employee)
    BackupCodeDevice.objects.create(user=employee, name="Backup codes").replace_codes()
    assert get(client, "/accounts/").status_code == 200
    return client


def test_the_user_list_shows_two_step_status_and_codes_left(
    admin_client_secure, signed_in_employee, password_only_user
):
    page = get(admin_client_secure, USERS).content.decode()

    assert "not set up" in page
    assert "set up 20" in page
    assert ">10<" in page


def test_resetting_asks_for_a_reason_first(admin_client_secure, employee, signed_in_employee):
    response = post(
        admin_client_secure,
        USERS,
        {"action": "reset_two_factor", "_selected_action": [employee.pk]},
    )

    assert response.status_code == 200
    assert b"Reason" in response.content
    assert TOTPDevice.objects.filter(user=employee).exists()


def test_reset_removes_devices_ends_sessions_and_forces_enrolment(
    admin_client_secure, employee, signed_in_employee
):
    response = post(
        admin_client_secure,
        USERS,
        {
            "action": "reset_two_factor",
            "_selected_action": [employee.pk],
            "confirm": "yes",
            "reason": "lost phone, identity checked by phone call",
        },
    )

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=employee).exists()
    assert not BackupCodeDevice.objects.filter(user=employee).exists()
    assert get(signed_in_employee, "/accounts/")["Location"].startswith("/accounts/login/")
    event = AuditEvent.objects.get(action="device.reset_by_admin")
    assert event.actor_username == "root-admin"
    assert event.target == f"auth.user:{employee.pk}"
    assert event.details["reason"] == "lost phone, identity checked by phone call"
    assert event.details["sessions_ended"] == 1

    again = Client()
    post(again, "/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert get(again, "/accounts/")["Location"].startswith("/accounts/enrol/")


def test_deactivation_ends_the_sessions_and_is_recorded(
    admin_client_secure, employee, signed_in_employee
):
    post(admin_client_secure, USERS, {"action": "deactivate", "_selected_action": [employee.pk]})

    employee.refresh_from_db()
    assert employee.is_active is False
    assert get(signed_in_employee, "/accounts/").status_code == 302
    assert AuditEvent.objects.get(action="user.deactivated").actor_username == "root-admin"


def test_a_member_of_admins_can_reset_too(group_admin, employee):
    enrol_totp(employee)
    client = Client()
    login_2fa(client, group_admin)

    post(
        client,
        USERS,
        {
            "action": "reset_two_factor",
            "_selected_action": [employee.pk],
            "confirm": "yes",
            "reason": "new phone",
        },
    )

    assert not TOTPDevice.objects.filter(user=employee).exists()


def test_compliance_cannot_reset_anyone(compliance_client, employee):
    enrol_totp(employee)

    response = post(
        compliance_client,
        USERS,
        {
            "action": "reset_two_factor",
            "_selected_action": [employee.pk],
            "confirm": "yes",
            "reason": "x",
        },
    )

    assert response.status_code == 403
    assert TOTPDevice.objects.filter(user=employee).exists()


def test_keys_and_codes_never_appear_in_the_admin(admin_client_secure, employee):
    device = enrol_totp(employee)

    page = get(admin_client_secure, f"{USERS}{employee.pk}/change/").content.decode()

    assert device.key not in page
    assert device.base32_key not in page


def test_a_user_added_in_the_admin_can_chat(admin_client_secure):
    response = post(
        admin_client_secure,
        f"{USERS}add/",
        {
            "username": "newcomer",
            "password1": "a long new passphrase 77",
            "password2": "a long new passphrase 77",
            "usable_password": "true",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    from django.contrib.auth.models import User

    assert list(User.objects.get(username="newcomer").groups.values_list("name", flat=True)) == [
        "Employees"
    ]


def test_an_admin_cannot_grant_superuser_or_change_their_own_roles(group_admin, employee):
    client = Client()
    login_2fa(client, group_admin)

    other = get(client, f"{USERS}{employee.pk}/change/").content.decode()
    own = get(client, f"{USERS}{group_admin.pk}/change/").content.decode()

    assert 'name="groups"' in other
    assert 'name="is_superuser"' not in other
    assert 'name="groups"' not in own
    assert 'name="is_staff"' not in own
