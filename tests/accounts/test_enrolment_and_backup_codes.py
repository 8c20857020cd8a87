"""Setting up the authenticator app, and the backup codes that come with it."""

import re
import time

import pytest
from django.db import connection
from django.test import Client

from accounts.models import BackupCode, TOTPDevice
from accounts.services import SIGNED_IN_AT_KEY
from audit.models import AuditEvent
from core import crypto
from tests.support.personas import PASSWORD, enrol_totp, totp_code

pytestmark = pytest.mark.django_db

IP = "10.4.4.4"


def post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def get(client, path):
    return client.get(path, REMOTE_ADDR=IP, secure=True)


def password_step(client, user):
    post(client, "/accounts/login/", {"username": user.username, "password": PASSWORD})


def enrol_in(client, user) -> tuple[TOTPDevice, list[str]]:
    password_step(client, user)
    page = get(client, "/accounts/enrol/")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = post(client, "/accounts/enrol/", {"code": totp_code(device)})
    assert response.status_code == 200, response.content[:500]
    codes = re.findall(rb"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", response.content)
    return page, [c.decode() for c in codes]


def test_the_enrolment_page_shows_a_qr_code_inline_and_the_key(password_only_user):
    client = Client()
    password_step(client, password_only_user)

    page = get(client, "/accounts/enrol/")

    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=password_only_user)
    assert device.confirmed is False
    content = page.content.decode()
    figure = re.search(r'<figure class="qr"[^>]*>(.*?)</figure>', content, re.S).group(1)
    assert figure.lstrip().startswith("<svg")
    assert "<img" not in figure and "href" not in figure
    assert " ".join(re.findall(".{1,4}", device.base32_key)) in content
    assert 'autocomplete="one-time-code"' in content
    assert 'inputmode="numeric"' in content


def test_the_qr_code_carries_the_issuer_and_the_key(password_only_user):
    device = TOTPDevice.objects.create(user=password_only_user, confirmed=False)

    uri = device.config_url("Private Chat")

    assert uri.startswith("otpauth://totp/Private%20Chat%3Apat?")
    assert f"secret={device.base32_key}" in uri
    assert "issuer=Private%20Chat" in uri


def test_reloading_the_page_keeps_the_same_key(password_only_user):
    client = Client()
    password_step(client, password_only_user)
    get(client, "/accounts/enrol/")
    get(client, "/accounts/enrol/")

    assert TOTPDevice.objects.filter(user=password_only_user).count() == 1


def test_a_wrong_first_code_does_not_confirm_the_device(password_only_user):
    client = Client()
    password_step(client, password_only_user)
    get(client, "/accounts/enrol/")

    response = post(client, "/accounts/enrol/", {"code": "123456"})

    assert response.status_code == 400
    assert b"That code is not right" in response.content
    assert not TOTPDevice.objects.filter(user=password_only_user, confirmed=True).exists()


def test_the_first_valid_code_confirms_the_device_and_shows_ten_backup_codes(password_only_user):
    client = Client()

    _, codes = enrol_in(client, password_only_user)

    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=password_only_user).confirmed is True
    assert get(client, "/accounts/").status_code == 200
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"device.enrolled", "backup_codes.generated"} <= actions


def test_backup_codes_are_stored_only_as_hashes(password_only_user):
    _, codes = enrol_in(Client(), password_only_user)

    with connection.cursor() as cursor:
        cursor.execute("SELECT code_hash FROM accounts_backupcode")
        stored = [row[0] for row in cursor.fetchall()]

    assert len(stored) == 10
    for value in stored:
        assert value.startswith("backup_code_pbkdf2$")
        for code in codes:
            assert code.replace("-", "") not in value
            assert code not in value


def test_the_totp_key_is_stored_encrypted(password_only_user):
    device = TOTPDevice.objects.create(user=password_only_user, confirmed=False)

    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM accounts_totpdevice WHERE id = %s", [device.pk])
        (stored,) = cursor.fetchone()

    assert device.key not in stored
    assert len(device.key) == 40
    assert crypto.decrypt(stored) == device.key


def test_a_backup_code_signs_in_once_only(password_only_user):
    _, codes = enrol_in(Client(), password_only_user)

    first = Client()
    password_step(first, password_only_user)
    used = post(first, "/accounts/verify/", {"code": codes[3].upper()})
    second = Client()
    password_step(second, password_only_user)
    reused = post(second, "/accounts/verify/", {"code": codes[3]})

    assert used.status_code == 302
    assert get(first, "/accounts/").status_code == 200
    assert reused.status_code == 400
    event = AuditEvent.objects.get(action="backup_code.used")
    assert event.details == {"backup_codes_left": 9}
    assert BackupCode.objects.filter(used_at__isnull=True).count() == 9


def test_the_account_page_counts_the_codes_left(password_only_user):
    client = Client()
    enrol_in(client, password_only_user)

    page = get(client, "/accounts/")

    assert b"data-codes-left>10<" in page.content


def test_new_backup_codes_replace_the_old_ones(password_only_user):
    client = Client()
    _, old_codes = enrol_in(client, password_only_user)
    # The enrolment just proved the second factor, so no step-up is asked.
    made = post(client, "/accounts/backup-codes/", {})
    assert made.status_code == 200
    assert b"New backup codes" in made.content

    other = Client()
    password_step(other, password_only_user)

    assert post(other, "/accounts/verify/", {"code": old_codes[0]}).status_code == 400


def test_an_enrolled_user_cannot_enrol_a_second_device_without_verifying(employee):
    enrol_totp(employee)
    client = Client()
    password_step(client, employee)

    response = get(client, "/accounts/enrol/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/verify/")


def test_a_session_whose_password_sign_in_is_stale_cannot_enrol(password_only_user):
    client = Client()
    password_step(client, password_only_user)
    session = client.session
    session[SIGNED_IN_AT_KEY] = time.time() - 11 * 60
    session.save()

    response = get(client, "/accounts/enrol/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not TOTPDevice.objects.filter(user=password_only_user).exists()
    login_page = get(client, response["Location"])
    assert b"Sign in again with your password to set up two-step verification." in (
        login_page.content
    )
    assert get(client, "/accounts/enrol/")["Location"].startswith("/accounts/login/")


def test_a_code_posted_from_a_stale_session_enrols_nothing(password_only_user):
    client = Client()
    password_step(client, password_only_user)
    get(client, "/accounts/enrol/")
    device = TOTPDevice.objects.get(user=password_only_user)
    session = client.session
    session[SIGNED_IN_AT_KEY] = time.time() - 11 * 60
    session.save()

    response = post(client, "/accounts/enrol/", {"code": totp_code(device)})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=password_only_user, confirmed=True).exists()
