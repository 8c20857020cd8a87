"""Each wired event comes from the real flow that causes it."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from audit.models import AuditEvent
from tests.support.personas import PASSWORD, login_2fa

pytestmark = pytest.mark.django_db

ADMIN_IP = "10.0.0.10"


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def last_event():
    return AuditEvent.objects.order_by("-sequence").first()


def admin_post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=ADMIN_IP, secure=True)


def test_a_successful_login_records_who_and_from_where(admin_user):
    client = Client(HTTP_USER_AGENT="Chromium/156")
    response = client.post(
        "/accounts/login/",
        {"username": admin_user.username, "password": PASSWORD},
        REMOTE_ADDR="10.9.8.7",
        secure=True,
    )

    assert response.status_code == 302
    (event,) = events("login.success")
    assert event.actor == admin_user
    assert event.source_ip == "10.9.8.7"
    assert event.user_agent == "Chromium/156"
    assert event.outcome == "success"


def test_a_failed_login_records_the_username_tried_and_never_the_password(admin_user):
    Client().post(
        "/accounts/login/",
        {"username": admin_user.username, "password": "wrong-password-123"},
        REMOTE_ADDR="10.9.8.7",
        secure=True,
    )

    (event,) = events("login.failure")
    assert event.outcome == "failure"
    assert event.actor is None
    assert event.details == {"username_tried": admin_user.username, "backend": "local"}
    assert event.source_ip == "10.9.8.7"
    assert "wrong-password-123" not in str(AuditEvent.objects.values_list())


def test_logout_is_recorded(admin_client_secure, admin_user):
    admin_client_secure.post("/admin/logout/", REMOTE_ADDR=ADMIN_IP, secure=True)

    (event,) = events("logout")
    assert event.actor == admin_user
    assert event.source_ip == ADMIN_IP


def test_an_admin_creating_a_user_is_recorded_with_the_admin_as_actor(admin_client_secure):
    admin_post(
        admin_client_secure,
        "/admin/auth/user/add/",
        {
            "username": "dave",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "usable_password": "true",
        },
    )

    dave = get_user_model().objects.get(username="dave")
    (event,) = [e for e in events("user.created") if e.target == f"auth.user:{dave.pk}"]
    assert event.actor_username == "root-admin"
    assert event.source_ip == ADMIN_IP
    assert event.target == f"auth.user:{dave.pk}"
    assert event.details["username"] == "dave"


def _change_user(client, user, **changes):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "groups": [g.pk for g in user.groups.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    data.update(changes)
    data = {k: v for k, v in data.items() if v != ""}
    response = admin_post(client, f"/admin/auth/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_deactivating_a_user_in_the_admin_is_recorded(admin_client_secure, employee):
    _change_user(admin_client_secure, employee, is_active="")

    (event,) = events("user.deactivated")
    assert event.target == f"auth.user:{employee.pk}"
    assert event.actor_username == "root-admin"


def test_changing_a_users_groups_is_recorded(admin_client_secure, employee):
    compliance = Group.objects.get(name="Compliance")

    current = list(employee.groups.values_list("pk", flat=True))

    _change_user(admin_client_secure, employee, groups=[*current, compliance.pk])

    (event,) = [e for e in events("group.changed") if e.actor_username == "root-admin"]
    assert event.details == {"operation": "added", "groups": ["Compliance"]}
    assert event.target == f"auth.user:{employee.pk}"
    assert event.actor_username == "root-admin"


def test_making_a_user_staff_is_recorded_as_a_user_change(admin_client_secure, employee):
    _change_user(admin_client_secure, employee, is_staff="on")

    (event,) = events("user.changed")
    assert event.details["fields"] == ["is_staff"]
    assert event.details["is_staff"] is True


def test_an_admin_setting_a_password_is_recorded_without_the_password(
    admin_client_secure, employee
):
    admin_post(
        admin_client_secure,
        f"/admin/auth/user/{employee.pk}/password/",
        {"password1": "another long passphrase 9", "password2": "another long passphrase 9"},
    )

    (event,) = events("password.changed")
    assert event.target == f"auth.user:{employee.pk}"
    assert "another long passphrase" not in str(event.details)


def test_group_permission_changes_are_recorded(admin_client_secure):
    permission = Permission.objects.get(codename="view_user")

    admin_post(
        admin_client_secure,
        "/admin/auth/group/add/",
        {"name": "Helpdesk", "permissions": [permission.pk]},
    )

    created = [e for e in events("group.changed") if e.details.get("group") == "Helpdesk"]
    assert created[0].details == {"group": "Helpdesk", "operation": "created"}
    (granted,) = events("permission.changed")
    assert granted.details == {"operation": "added", "permissions": ["auth.view_user"]}
    assert granted.actor_username == "root-admin"


def test_deleting_a_user_is_recorded(admin_client_secure, employee):
    admin_post(admin_client_secure, f"/admin/auth/user/{employee.pk}/delete/", {"post": "yes"})

    (event,) = events("user.deleted")
    assert event.details == {"username": "alice"}


def test_a_request_from_outside_the_networks_is_recorded_as_refused(client):
    client.get("/admin/", REMOTE_ADDR="198.51.100.23", secure=True)

    event = last_event()
    assert event.action == "network.refused"
    assert event.outcome == "denied"
    assert event.source_ip == "198.51.100.23"
    assert event.details["channel"] == "http"
    assert event.details["path"] == "/admin/"


def test_a_flood_of_refusals_from_one_address_is_capped(client):
    from audit.log import PROBES_AUDITED_PER_MINUTE

    for _ in range(PROBES_AUDITED_PER_MINUTE + 15):
        client.get("/", REMOTE_ADDR="198.51.100.99", secure=True)

    assert len(events("network.refused")) == PROBES_AUDITED_PER_MINUTE


def test_opening_an_admin_page_without_permission_is_recorded(
    compliance_client, compliance_officer
):
    response = compliance_client.get("/admin/auth/user/", REMOTE_ADDR=ADMIN_IP, secure=True)

    assert response.status_code == 403
    event = last_event()
    assert event.action == "permission.denied"
    assert event.actor == compliance_officer
    assert event.details["path"] == "/admin/auth/user/"


def test_a_csrf_failure_is_recorded(admin_user):
    client = Client(enforce_csrf_checks=True)
    login_2fa(client, admin_user)

    response = client.post("/admin/logout/", REMOTE_ADDR=ADMIN_IP, secure=True)

    assert response.status_code == 403
    event = last_event()
    assert event.action == "csrf.failure"
    assert event.actor == admin_user
    assert event.details["reason"]
