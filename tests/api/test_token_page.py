"""The token page: a new token needs a fresh authenticator code, or a passkey answer to a
challenge made for it, even in a verified session."""

import base64
import re
import secrets

import pytest
from django_otp_webauthn.models import WebAuthnCredential

from accounts.passkeys import ACTION_CHALLENGE_KEY, ACTION_CHALLENGE_SECONDS
from api.models import ApiToken
from audit.models import AuditEvent
from tests.support.personas import let_second_factor_age, totp_code

pytestmark = pytest.mark.django_db

IP = "10.4.4.4"


def post(client, path, data):
    return client.post(path, data, REMOTE_ADDR=IP, secure=True)


def new_token(client, code, **fields):
    data = {"name": "notebook", "days": "30", "scopes": ["chat", "models"], "code": code}
    return post(client, "/tokens/", {**data, **fields})


def test_the_account_page_links_to_the_tokens(employee_client):
    page = employee_client.get("/accounts/", REMOTE_ADDR=IP, secure=True)

    assert b'href="/tokens/"' in page.content


def test_a_wrong_code_makes_no_token(employee_client, employee):
    response = new_token(employee_client, "000000")

    assert response.status_code == 400
    assert "That code is not right" in response.content.decode()
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.filter(action="otp.failure").exists()


def test_no_code_makes_no_token(employee_client):
    response = new_token(employee_client, "")

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_fresh_code_makes_a_token_shown_once(employee_client, employee):
    device = employee.totpdevice_set.get()

    response = new_token(employee_client, totp_code(device))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    text = re.search(r"data-api-token>([^<]+)<", response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert token.scope_list == ["chat", "models"]
    listing = employee_client.get("/tokens/", REMOTE_ADDR=IP, secure=True).content.decode()
    assert token.prefix in listing
    assert text not in listing


def test_more_days_than_the_site_allows_are_refused(employee_client, employee, settings):
    settings.API_TOKEN_MAX_DAYS = 7
    device = employee.totpdevice_set.get()

    response = new_token(employee_client, totp_code(device), days="8")

    assert response.status_code == 400
    assert "at most 7 days" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_owner_revokes_a_token_and_no_one_else_can(client, employee_client, employee):
    device = employee.totpdevice_set.get()
    new_token(employee_client, totp_code(device))
    token = ApiToken.objects.get()

    response = post(employee_client, f"/tokens/{token.pk}/revoke", {})

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.state == "revoked"
    assert post(employee_client, f"/tokens/{token.pk}/revoke", {}).status_code == 404


def test_someone_else_cannot_revoke_it(client, employee, other_employee):
    from api import services
    from tests.support.personas import login_2fa

    token, _ = services.create_api_token(actor=employee, user=employee, name="mine")
    login_2fa(client, other_employee)

    assert post(client, f"/tokens/{token.pk}/revoke", {}).status_code == 404
    token.refresh_from_db()
    assert token.state == "active"


def test_an_admin_revokes_anyones_token_in_the_admin(admin_client_secure, admin_user, employee):
    from api import services

    token, _ = services.create_api_token(actor=employee, user=employee, name="theirs")

    listing = admin_client_secure.get("/admin/api/apitoken/", REMOTE_ADDR=IP, secure=True)
    assert token.prefix in listing.content.decode()
    response = post(
        admin_client_secure,
        "/admin/api/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.state == "revoked"
    event = AuditEvent.objects.get(action="token.revoked")
    assert event.actor == admin_user
    assert event.details["reason"] == "by_admin"


def test_an_admin_sees_usage_per_person_token_day_and_model(admin_client_secure, employee):
    from api import services
    from api.models import ApiUsage

    token, _ = services.create_api_token(actor=employee, user=employee, name="notebook")
    services.record_call(
        token=token,
        endpoint="chat.completions",
        model_name="SmolLM2-135M-Instruct",
        prompt_tokens=30,
        completion_tokens=12,
        duration_ms=800,
    )
    services.record_call(
        token=token,
        endpoint="chat.completions",
        model_name="SmolLM2-135M-Instruct",
        prompt_tokens=10,
        completion_tokens=5,
        duration_ms=300,
    )

    usage = ApiUsage.objects.get()
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens) == (2, 40, 17)
    page = admin_client_secure.get(
        f"/admin/api/apiusage/?q={employee.username}", REMOTE_ADDR=IP, secure=True
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "SmolLM2-135M-Instruct" in text
    assert ">57<" in text


# --- Confirming a new token with a passkey (the browser's side: tests/e2e/test_token_passkey.py)


def passkey(user):
    return WebAuthnCredential.objects.create(
        user=user,
        name="work laptop",
        credential_id=secrets.token_bytes(32),
        public_key=secrets.token_bytes(77),
        sign_count=3,
        confirmed=True,
    )


def new_token_with_passkey(client, assertion, **fields):
    data = {"name": "notebook", "days": "30", "scopes": ["chat"], "passkey": assertion}
    return post(client, "/tokens/", {**data, **fields})


def test_the_page_offers_a_passkey_only_to_someone_with_one(employee_client, employee):
    without = employee_client.get("/tokens/", REMOTE_ADDR=IP, secure=True).content.decode()
    passkey(employee)
    with_one = employee_client.get("/tokens/", REMOTE_ADDR=IP, secure=True).content.decode()

    assert "Make the token with a passkey" not in without
    assert "Make the token with a passkey" in with_one
    assert 'data-passkey-challenge="/tokens/passkey-challenge"' in with_one
    assert "<script>" not in with_one  # no inline code under the CSP


def test_a_verified_session_alone_makes_no_token(employee_client, employee):
    # Signed in with a passkey a while ago: the session is verified, and that is all.
    passkey(employee)
    let_second_factor_age(employee_client, 60)

    response = new_token(employee_client, "")

    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_passkey_answer_without_a_challenge_for_the_token_makes_no_token(
    employee_client, employee
):
    passkey(employee)

    response = new_token_with_passkey(employee_client, '{"id": "x"}')

    assert response.status_code == 400
    assert "Use your passkey with the page&#x27;s button" in response.content.decode()
    assert not ApiToken.objects.exists()
    failed = AuditEvent.objects.get(action="passkey.failed")
    assert failed.details == {"ceremony": "api_token", "reason": "no_challenge"}


def test_the_challenge_is_for_this_token_only_and_spent_by_any_answer(employee_client, employee):
    credential = passkey(employee)

    options = post(employee_client, "/tokens/passkey-challenge", {}).json()
    pending = employee_client.session[ACTION_CHALLENGE_KEY]
    wrong = new_token_with_passkey(employee_client, '{"id": "not a passkey"}')

    assert [c["id"] for c in options["allowCredentials"]] == [
        base64.urlsafe_b64encode(credential.credential_id).rstrip(b"=").decode()
    ]
    assert pending["purpose"] == "api_token"
    assert pending["state"]["challenge"] == options["challenge"]
    assert wrong.status_code == 400
    assert ACTION_CHALLENGE_KEY not in employee_client.session
    assert not ApiToken.objects.exists()
    assert AuditEvent.objects.get(action="passkey.failed").details["ceremony"] == "api_token"


def test_an_old_challenge_is_refused(employee_client, employee):
    passkey(employee)
    post(employee_client, "/tokens/passkey-challenge", {})
    session = employee_client.session
    session[ACTION_CHALLENGE_KEY]["at"] -= ACTION_CHALLENGE_SECONDS + 1
    session.save()

    response = new_token_with_passkey(employee_client, '{"id": "x"}')

    assert response.status_code == 400
    assert "took too long" in response.content.decode()
    assert AuditEvent.objects.get(action="passkey.failed").details["reason"] == (
        "challenge_expired"
    )


def test_a_challenge_for_sign_in_does_not_confirm_a_token(employee_client, employee):
    passkey(employee)
    post(employee_client, "/accounts/passkeys/authentication/begin/", {})

    response = new_token_with_passkey(employee_client, '{"id": "x"}')

    assert response.status_code == 400
    assert AuditEvent.objects.get(action="passkey.failed").details["reason"] == "no_challenge"


def test_someone_without_a_passkey_gets_no_challenge(employee_client):
    response = post(employee_client, "/tokens/passkey-challenge", {})

    assert response.status_code == 400
    assert ACTION_CHALLENGE_KEY not in employee_client.session


def test_a_code_confirmed_token_says_so_in_the_audit_log(employee_client, employee):
    new_token(employee_client, totp_code(employee.totpdevice_set.get()))

    assert AuditEvent.objects.get(action="token.created").details["confirmed_with"] == "totp"
