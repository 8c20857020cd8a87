"""Sessions: idle and absolute limits, and ending every session of a user."""

import time

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.models import SignInSession, hashed_session_key
from accounts.services import SIGNED_IN_AT_KEY, deactivate_user, reset_two_factor
from audit.models import AuditEvent
from tests.support.personas import PASSWORD, login_2fa

pytestmark = pytest.mark.django_db

IP = "10.7.7.7"


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def test_the_session_cookie_is_an_idle_timeout_of_thirty_minutes(employee_client):
    response = get(employee_client, "/accounts/")

    cookie = response.cookies["__Host-session"]
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert int(cookie["max-age"]) == 30 * 60
    assert cookie["secure"] and cookie["httponly"]
    assert cookie["samesite"] == "Lax"


def test_a_session_older_than_the_absolute_lifetime_is_signed_out(employee_client):
    session = employee_client.session
    session[SIGNED_IN_AT_KEY] = time.time() - 12 * 60 * 60 - 1
    session.save()

    response = get(employee_client, "/accounts/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert get(employee_client, "/accounts/").status_code == 302


def test_a_session_within_the_lifetime_continues(employee_client):
    session = employee_client.session
    session[SIGNED_IN_AT_KEY] = time.time() - 11 * 60 * 60
    session.save()

    assert get(employee_client, "/accounts/").status_code == 200


def test_changing_the_password_signs_out_every_other_session(employee, employee_client):
    other = Client()
    login_2fa(other, employee)
    assert get(other, "/accounts/").status_code == 200

    response = employee_client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase 77",
            "new_password2": "a brand new passphrase 77",
        },
        REMOTE_ADDR=IP,
        secure=True,
    )

    assert response.status_code == 302
    assert get(employee_client, "/accounts/").status_code == 200
    assert get(other, "/accounts/").status_code == 302
    event = AuditEvent.objects.get(action="password.changed")
    assert (event.actor_username, event.target) == ("alice", f"auth.user:{employee.pk}")


NEW_PASSWORD = "a brand new passphrase 77"


def change_password(client):
    response = client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        REMOTE_ADDR=IP,
        secure=True,
    )
    assert response.status_code == 302
    return response


def session_key(client) -> str:
    return client.cookies["__Host-session"].value


def test_after_a_password_change_the_session_is_still_known(employee, employee_client):
    change_password(employee_client)

    hashes = list(SignInSession.objects.filter(user=employee).values_list("key_hash", flat=True))
    assert hashes == [hashed_session_key(session_key(employee_client))]


def test_resetting_two_step_after_a_password_change_ends_that_session(
    employee, employee_client, admin_user
):
    change_password(employee_client)

    reset_two_factor(actor=admin_user, user=employee, reason="Lost phone")

    event = AuditEvent.objects.get(action="device.reset_by_admin")
    assert event.details["sessions_ended"] >= 1
    response = get(employee_client, "/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert get(employee_client, "/accounts/enrol/")["Location"].startswith("/accounts/login/")


def test_deactivating_after_a_password_change_ends_that_session(
    employee, employee_client, admin_user
):
    change_password(employee_client)

    deactivate_user(actor=admin_user, user=employee)

    assert not Session.objects.filter(
        session_key=hashed_session_key(session_key(employee_client))
    ).exists()
    assert get(employee_client, "/accounts/")["Location"].startswith("/accounts/login/")


def test_signing_out_forgets_the_session(employee, employee_client):
    key = employee_client.session.session_key
    assert SignInSession.objects.filter(key_hash=hashed_session_key(key)).exists()

    employee_client.post("/accounts/logout/", REMOTE_ADDR=IP, secure=True)

    assert not SignInSession.objects.filter(user=employee).exists()
