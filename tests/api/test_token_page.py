"""The token page: a new token needs a fresh authenticator code even in a verified session."""

import re

import pytest

from api.models import ApiToken
from audit.models import AuditEvent
from tests.support.personas import totp_code

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
