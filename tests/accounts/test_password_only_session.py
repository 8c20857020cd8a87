"""A session with a password but no second factor reaches nothing but the next step."""

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.support.personas import PASSWORD, enrol_totp
from tests.support.websockets import connect_with_session

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = [
    "/",
    "/accounts/",
    "/accounts/password/",
    "/admin/",
    "/admin/audit/auditevent/",
    "/admin/auth/user/",
    "/admin/audit/auditevent/export/csv/",
]


@pytest.fixture
def half_signed_in(admin_user):
    """A superuser who typed the password but not yet the code."""
    enrol_totp(admin_user)
    client = Client()
    response = client.post(
        "/accounts/login/",
        {"username": admin_user.username, "password": PASSWORD},
        REMOTE_ADDR="10.5.5.5",
        secure=True,
    )
    assert response.status_code == 302
    return client


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_password_only_session_to_verification(half_signed_in, path):
    response = half_signed_in.get(path, REMOTE_ADDR="10.5.5.5", secure=True)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/verify/")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_an_anonymous_visitor_to_sign_in(client, path):
    response = client.get(path, REMOTE_ADDR="10.5.5.5", secure=True)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_health_and_the_sign_in_page_need_no_session(client):
    from chat.inference import registry

    registry.beat("w", {"state": "ready", "model": "m"})
    assert client.get("/healthz", REMOTE_ADDR="10.5.5.5", secure=True).status_code == 200
    assert client.get("/accounts/login/", REMOTE_ADDR="10.5.5.5", secure=True).status_code == 200


def test_the_admins_own_sign_in_page_hands_over_to_the_two_step_one(client):
    response = client.get("/admin/login/?next=/admin/", REMOTE_ADDR="10.5.5.5", secure=True)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/"


async def test_a_password_only_session_cannot_open_a_websocket(half_signed_in):
    connected, code = await connect_with_session(half_signed_in)

    assert connected is False
    assert code == 4403
    event = await AuditEvent.objects.filter(action="websocket.refused").alast()
    assert event.details["reason"] == "second_factor_missing"
    assert event.actor_username == "root-admin"


async def test_a_verified_session_opens_the_websocket(employee_client):
    connected, _ = await connect_with_session(employee_client)

    assert connected is True


async def test_an_anonymous_websocket_is_refused():
    connected, _ = await connect_with_session(Client())

    assert connected is False
    event = await AuditEvent.objects.filter(action="websocket.refused").alast()
    assert event.details["reason"] == "not_signed_in"


async def test_a_websocket_from_a_foreign_origin_is_refused_and_recorded(employee_client):
    connected, _ = await connect_with_session(employee_client, origin=b"https://evil.example")

    assert connected is False
    event = await AuditEvent.objects.filter(action="websocket.refused").alast()
    assert event.details["reason"] == "origin_not_allowed"
