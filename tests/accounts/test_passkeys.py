"""Passkeys around their ceremonies (which tests/e2e/test_passkeys.py drives in Chromium):
naming, step-up before registering, removal and its last-factor rule, an admin's reset, who
sees them, and the relying party derived from ALLOWED_HOSTS."""

import json
import secrets

import pytest
from django.test import Client
from django_otp_webauthn.models import WebAuthnCredential

from accounts import services
from accounts.passkeys import PENDING_NAME_KEY
from accounts.services import reset_two_factor
from audit.models import AuditEvent
from project.settings import _passkey_rp_id
from tests.support.personas import PASSWORD, let_second_factor_age

pytestmark = pytest.mark.django_db


def passkey(user, name="work laptop") -> WebAuthnCredential:
    return WebAuthnCredential.objects.create(
        user=user,
        name=name,
        credential_id=secrets.token_bytes(32),
        public_key=secrets.token_bytes(77),
        sign_count=3,
        confirmed=True,
    )


def get(client, path):
    return client.get(path, secure=True)


def post(client, path, data=None):
    return client.post(path, data or {}, secure=True)


def test_the_passkeys_page_lists_only_the_owners_passkeys(
    employee_client, employee, other_employee
):
    passkey(employee, "work laptop")
    passkey(other_employee, "bob's yubikey")

    page = get(employee_client, "/accounts/passkeys/").content.decode()

    assert "work laptop" in page
    assert "bob&#x27;s yubikey" not in page and "bob's yubikey" not in page


def test_adding_a_passkey_needs_a_fresh_second_factor(employee_client):
    let_second_factor_age(employee_client, 10_000)

    prompt = get(employee_client, "/accounts/passkeys/add/")
    refused = post(employee_client, "/accounts/passkeys/add/", {"name": "work laptop"})

    assert b"data-step-up" in prompt.content
    assert refused.status_code == 403
    assert PENDING_NAME_KEY not in employee_client.session


def test_a_named_passkey_goes_on_to_the_registration_page(employee_client):
    response = post(employee_client, "/accounts/passkeys/add/", {"name": "  work\u202e laptop "})

    assert response.status_code == 200
    assert b"data-passkey-register" in response.content
    assert b'id="otp_webauthn_config"' in response.content
    assert b"<script>" not in response.content  # no inline code under the CSP
    assert employee_client.session[PENDING_NAME_KEY] == "work laptop"


@pytest.mark.parametrize(
    ("name", "error"), [("", b"Give the passkey a name"), ("x" * 61, b"under 61 characters")]
)
def test_a_passkey_name_must_be_given_and_short(employee_client, name, error):
    response = post(employee_client, "/accounts/passkeys/add/", {"name": name})

    assert response.status_code == 400
    assert error in response.content


def test_registration_does_not_begin_with_a_stale_second_factor(employee_client):
    session = employee_client.session
    session[PENDING_NAME_KEY] = "work laptop"
    session.save()
    let_second_factor_age(employee_client, 10_000)

    response = post(employee_client, "/accounts/passkeys/registration/begin/")

    assert response.status_code == 403
    assert json.loads(response.content)["code"] == "step_up_needed"
    event = AuditEvent.objects.get(action="passkey.failed")
    assert event.details == {"ceremony": "registration", "reason": "step_up_needed"}


def test_registration_does_not_begin_without_a_name(employee_client):
    response = post(employee_client, "/accounts/passkeys/registration/begin/")

    assert response.status_code == 400
    assert json.loads(response.content)["code"] == "name_missing"


def test_registration_begins_for_the_relying_party_with_preferred_verification(employee_client):
    post(employee_client, "/accounts/passkeys/add/", {"name": "work laptop"})

    options = json.loads(post(employee_client, "/accounts/passkeys/registration/begin/").content)

    assert options["rp"] == {"name": "Private Chat", "id": "localhost"}
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"


def test_using_a_passkey_asks_for_preferred_user_verification(employee):
    passkey(employee)
    client = Client()
    post(client, "/accounts/login/", {"username": employee.username, "password": PASSWORD})

    response = post(client, "/accounts/passkeys/authentication/begin/")

    options = json.loads(response.content)
    assert response.status_code == 200
    assert options["userVerification"] == "preferred"
    assert len(options["allowCredentials"]) == 1


def test_nobody_signed_out_may_begin_a_passkey_ceremony():
    response = post(Client(), "/accounts/passkeys/authentication/begin/")

    assert response.status_code in (302, 403)
    assert not response.content.startswith(b'{"challenge"')


def test_a_passkey_is_removed_and_audited(employee_client, employee):
    laptop = passkey(employee)

    post(employee_client, f"/accounts/passkeys/{laptop.pk}/remove/")

    assert not WebAuthnCredential.objects.filter(pk=laptop.pk).exists()
    event = AuditEvent.objects.get(action="passkey.removed")
    assert event.details == {"passkey": laptop.pk, "name": "work laptop"}


def test_someone_elses_passkey_is_not_removed(employee_client, other_employee):
    theirs = passkey(other_employee)

    post(employee_client, f"/accounts/passkeys/{theirs.pk}/remove/")

    assert WebAuthnCredential.objects.filter(pk=theirs.pk).exists()


def test_the_last_remaining_second_factor_cannot_be_removed(employee):
    only = passkey(employee)
    employee.totpdevice_set.all().delete()

    refusal = services.remove_passkey(actor=employee, passkey_id=only.pk)

    assert refusal == services.LAST_FACTOR
    assert WebAuthnCredential.objects.filter(pk=only.pk).exists()
    assert not AuditEvent.objects.filter(action="passkey.removed").exists()


def test_with_two_passkeys_and_no_app_one_may_go(employee):
    first, second = passkey(employee, "one"), passkey(employee, "two")
    employee.totpdevice_set.all().delete()

    assert services.remove_passkey(actor=employee, passkey_id=first.pk) == ""
    assert services.remove_passkey(actor=employee, passkey_id=second.pk) == services.LAST_FACTOR


def test_an_admins_reset_removes_passkeys_too(employee, admin_user):
    passkey(employee)
    passkey(employee, "YubiKey")

    reset_two_factor(actor=admin_user, user=employee, reason="lost bag")

    assert not WebAuthnCredential.objects.filter(user=employee).exists()
    event = AuditEvent.objects.get(action="device.reset_by_admin")
    assert event.details["passkeys_removed"] == 2


def test_an_employee_cannot_see_passkeys_in_the_admin(employee_client):
    response = get(employee_client, "/admin/django_otp_webauthn/webauthncredential/")

    assert response.status_code in (302, 403, 404)


@pytest.mark.parametrize(
    ("hosts", "rp_id"),
    [
        (["localhost", "127.0.0.1", "[::1]"], "localhost"),
        (["127.0.0.1", "chat.corp.example"], "chat.corp.example"),
        ([".team.example", "10.1.2.3"], "team.example"),
        (["10.1.2.3", "[fd00::5]", "*"], ""),
    ],
)
def test_the_relying_party_is_the_first_domain_name_of_allowed_hosts(hosts, rp_id):
    assert _passkey_rp_id(hosts) == rp_id


def test_the_allowed_origins_are_the_https_hosts_on_the_relying_partys_domain(settings):
    assert settings.OTP_WEBAUTHN_RP_ID == "localhost"
    assert [f"https://localhost:{settings.PUBLIC_PORT}"] == settings.OTP_WEBAUTHN_ALLOWED_ORIGINS


def test_an_admin_sees_every_users_passkeys_without_their_keys(admin_client_secure, employee):
    laptop = passkey(employee, "work laptop")

    listing = get(admin_client_secure, "/admin/django_otp_webauthn/webauthncredential/")
    detail = get(
        admin_client_secure, f"/admin/django_otp_webauthn/webauthncredential/{laptop.pk}/change/"
    )

    assert listing.status_code == 200
    assert b"work laptop" in listing.content
    assert detail.status_code == 200
    assert laptop.public_key.hex().encode() not in detail.content
