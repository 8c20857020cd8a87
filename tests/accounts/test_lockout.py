"""Five wrong passwords for one username from one address pause sign-in for 15 minutes;
twenty for one username from any addresses pause that username."""

import datetime

import pytest
from axes.models import AccessAttempt
from django.test import Client

from accounts.services import unlock_sign_in
from audit.models import AuditEvent
from tests.support.personas import PASSWORD

pytestmark = pytest.mark.django_db


def attempt(password, ip="10.2.2.2", username="alice"):
    return Client().post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
        secure=True,
    )


def fail_five_times(ip="10.2.2.2"):
    for _ in range(5):
        attempt("wrong password 123", ip)


def test_the_sixth_attempt_is_locked_out_even_with_the_right_password(employee):
    fail_five_times()

    response = attempt(PASSWORD)

    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    assert b"paused for 15 minutes" in response.content
    assert "_auth_user_id" not in Client().session


def test_the_lockout_is_recorded(employee):
    fail_five_times()

    event = AuditEvent.objects.get(action="lockout")
    assert event.outcome == "denied"
    assert event.source_ip == "10.2.2.2"
    assert event.details == {"username_tried": "alice", "limit": "username_and_address"}
    assert AuditEvent.objects.filter(action="login.failure").count() == 5


def test_the_same_username_from_another_address_is_not_locked(employee):
    fail_five_times("10.2.2.2")

    assert attempt(PASSWORD, ip="10.3.3.3").status_code == 302


def test_sign_in_works_again_after_the_cool_off(employee):
    fail_five_times()
    assert attempt(PASSWORD).status_code == 429

    sixteen_minutes_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    AccessAttempt.objects.update(attempt_time=sixteen_minutes_ago)

    assert attempt(PASSWORD).status_code == 302


def test_four_failures_then_success_resets_the_count(employee):
    for _ in range(4):
        attempt("wrong password 123")
    assert attempt(PASSWORD).status_code == 302

    for _ in range(4):
        attempt("wrong password 123")

    assert attempt(PASSWORD).status_code == 302


def fail_from_many_addresses(count=20):
    """Four wrong passwords from each address: never enough to lock an address out."""
    for n in range(count):
        attempt("wrong password 123", ip=f"10.5.{n // 4}.{n % 4 + 1}")


def test_failures_spread_over_many_addresses_pause_the_username(employee):
    fail_from_many_addresses()

    response = attempt(PASSWORD, ip="10.6.6.6")

    assert response.status_code == 429
    assert b"from several places" in response.content
    assert b"ask an administrator to unlock" in response.content
    assert "_auth_user_id" not in Client().session


def test_the_account_pause_is_recorded_with_the_limit_it_hit(employee):
    fail_from_many_addresses()

    event = AuditEvent.objects.filter(action="lockout").last()
    assert event.outcome == "denied"
    assert event.details == {"username_tried": "alice", "limit": "username"}


def test_other_usernames_are_not_paused_by_one_account_being_guessed(employee, other_employee):
    fail_from_many_addresses()

    assert attempt(PASSWORD, ip="10.6.6.6", username="bob").status_code == 302


def test_the_owner_signs_in_again_after_the_cool_off(employee):
    fail_from_many_addresses()
    assert attempt(PASSWORD, ip="10.6.6.6").status_code == 429

    sixteen_minutes_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    AccessAttempt.objects.update(attempt_time=sixteen_minutes_ago)

    assert attempt(PASSWORD, ip="10.6.6.6").status_code == 302


def test_an_admin_unlocking_the_account_lets_the_owner_in_at_once(employee, admin_user):
    fail_from_many_addresses()
    fail_five_times("10.6.6.6")
    assert attempt(PASSWORD, ip="10.6.6.6").status_code == 429

    cleared = unlock_sign_in(actor=admin_user, user=employee)

    assert cleared >= 1
    assert attempt(PASSWORD, ip="10.6.6.6").status_code == 302
    event = AuditEvent.objects.get(action="lockout.cleared")
    assert (event.actor, event.target) == (admin_user, f"auth.user:{employee.pk}")
    assert event.details == {"failure_records_cleared": cleared}
