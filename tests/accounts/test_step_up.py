"""Step-up: generating backup codes and changing the password need a second factor proved
within STEP_UP_SECONDS; the prompt appears in place and returns to the action."""

import pytest
from django.test import Client

from accounts.models import BackupCode, TOTPDevice
from accounts.services import regenerate_backup_codes
from audit.models import AuditEvent
from tests.support.personas import PASSWORD, let_second_factor_age, login_2fa, totp_code

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new passphrase 77"
PROTECTED = ["/accounts/backup-codes/", "/accounts/password/"]


@pytest.fixture
def stale_client(employee, settings):
    """Signed in a while ago: the second factor is older than STEP_UP_SECONDS."""
    client = Client()
    login_2fa(client, employee)
    let_second_factor_age(client, settings.STEP_UP_SECONDS + 1)
    return client


def get(client, path):
    return client.get(path, secure=True)


def post(client, path, data):
    return client.post(path, data, secure=True)


def step_up(client, code, next_url):
    return post(client, "/accounts/step-up/", {"code": code, "next": next_url})


def test_step_up_defaults_to_five_minutes(settings):
    assert settings.STEP_UP_SECONDS == 300


@pytest.mark.parametrize("path", PROTECTED)
def test_a_fresh_second_factor_goes_straight_to_the_action(employee_client, path):
    response = get(employee_client, path)

    assert response.status_code == 200
    assert b"data-step-up" not in response.content


@pytest.mark.parametrize("path", PROTECTED)
def test_a_stale_second_factor_is_asked_for_in_place_and_returns_to_the_action(
    stale_client, employee, path
):
    prompt = get(stale_client, path)

    assert prompt.status_code == 200
    assert b"data-step-up" in prompt.content
    assert f'name="next" value="{path}"'.encode() in prompt.content
    device = TOTPDevice.objects.get(user=employee)
    back = step_up(stale_client, totp_code(device), path)
    assert (back.status_code, back["Location"]) == (302, path)
    action = get(stale_client, path)
    assert action.status_code == 200
    assert b"data-step-up" not in action.content
    event = AuditEvent.objects.get(action="otp.success")
    assert event.details == {"device": "totp", "step_up": True}


def test_stale_backup_codes_are_not_made_until_the_second_factor_is_proved(stale_client, employee):
    before = set(BackupCode.objects.values_list("code_hash", flat=True))

    refused = post(stale_client, "/accounts/backup-codes/", {})

    assert refused.status_code == 403
    assert b"data-step-up" in refused.content
    assert set(BackupCode.objects.values_list("code_hash", flat=True)) == before
    step_up(stale_client, totp_code(TOTPDevice.objects.get(user=employee)), "/")
    made = post(stale_client, "/accounts/backup-codes/", {})
    assert made.status_code == 200
    assert b"New backup codes" in made.content
    assert BackupCode.objects.filter(device__user=employee, used_at__isnull=True).count() == 10


def test_a_stale_password_change_is_not_carried_out(stale_client, employee):
    response = post(
        stale_client,
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 403
    employee.refresh_from_db()
    assert employee.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="password.changed").exists()


def test_a_wrong_step_up_code_stays_on_the_prompt_and_is_audited(stale_client):
    response = step_up(stale_client, "000000", "/accounts/password/")

    assert response.status_code == 400
    assert b"That code is not right" in response.content
    assert b'value="/accounts/password/"' in response.content
    assert get(stale_client, "/accounts/password/").content.count(b"data-step-up") == 1
    event = AuditEvent.objects.get(action="otp.failure")
    assert event.details == {"kind": "totp", "step_up": True}


def test_a_backup_code_also_steps_up(stale_client, employee):
    codes = regenerate_backup_codes(actor=employee)

    back = step_up(stale_client, codes[0], "/accounts/password/")

    assert back["Location"] == "/accounts/password/"
    assert b"data-step-up" not in get(stale_client, "/accounts/password/").content


def test_step_up_never_returns_to_another_site(stale_client, employee):
    back = step_up(
        stale_client, totp_code(TOTPDevice.objects.get(user=employee)), "https://evil.example/"
    )

    assert back["Location"] == "/"


def test_the_second_factor_ages_past_the_window(employee_client, settings):
    let_second_factor_age(employee_client, settings.STEP_UP_SECONDS - 5)
    assert b"data-step-up" not in get(employee_client, "/accounts/password/").content
    let_second_factor_age(employee_client, 10)
    assert b"data-step-up" in get(employee_client, "/accounts/password/").content
