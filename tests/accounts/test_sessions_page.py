"""The sessions page: a user sees where they are signed in and signs out other sessions; an
admin does the same for anyone in the admin. Session keys are stored only as hashes."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.db import connections
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY

from accounts import services
from accounts.models import SignInSession, hashed_session_key
from accounts.websocket import CLOSE_SESSION_ENDED
from audit.models import AuditEvent
from tests.support.personas import PASSWORD, enrol_totp
from tests.support.websockets import communicator_for

pytestmark = pytest.mark.django_db

FIREFOX_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
)
SAFARI_ON_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)


def signed_in_client(user, user_agent=FIREFOX_ON_WINDOWS, address="10.1.1.1"):
    """A browser that signed in with the password form (which records its user agent and
    address), then passed the second factor."""
    client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD}, secure=True
    )
    assert response.status_code == 302, response.content
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = enrol_totp(user).persistent_id
    session.save()
    return client


def cookie(client) -> str:
    return client.cookies["__Host-session"].value


def get(client, path):
    return client.get(path, secure=True)


def post(client, path, data=None):
    return client.post(path, data or {}, secure=True)


def session_of(client) -> SignInSession:
    return SignInSession.objects.get(key_hash=hashed_session_key(cookie(client)))


def test_no_table_holds_the_session_key_itself(employee):
    client = signed_in_client(employee)
    key = cookie(client)

    assert not Session.objects.filter(session_key=key).exists()
    assert not SignInSession.objects.filter(key_hash=key).exists()
    assert Session.objects.filter(session_key=hashed_session_key(key)).exists()
    assert get(client, "/accounts/").status_code == 200


def test_the_page_lists_each_session_with_browser_address_and_times(employee, other_employee):
    here = signed_in_client(employee, FIREFOX_ON_WINDOWS, "10.1.1.1")
    signed_in_client(employee, SAFARI_ON_MAC, "10.2.2.2")
    signed_in_client(other_employee, SAFARI_ON_MAC, "10.3.3.3")

    response = get(here, "/accounts/sessions/")

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("data-session=") == 2
    assert "Firefox 120 on Windows" in page and "Safari 17 on Mac OS X" in page
    assert "10.1.1.1" in page and "10.2.2.2" in page
    assert "10.3.3.3" not in page  # someone else's
    current = page.index("This session")
    assert page.index("Firefox 120 on Windows") < current < page.index("Safari 17")


def test_last_activity_and_address_follow_the_sessions_requests(employee):
    client = signed_in_client(employee, address="10.1.1.1")
    row = session_of(client)
    SignInSession.objects.filter(pk=row.pk).update(last_seen_at=row.started_at.replace(year=2020))
    session = client.session
    session[services.ACTIVITY_NOTED_KEY] = 0
    session.save()

    client.get("/accounts/", secure=True, REMOTE_ADDR="10.9.9.9")

    row.refresh_from_db()
    assert row.last_seen_at.year != 2020
    assert row.ip_address == "10.9.9.9"


def test_signing_out_another_session_ends_it_and_audits_who_ended_which(employee):
    here = signed_in_client(employee)
    there = signed_in_client(employee, SAFARI_ON_MAC)
    target = session_of(there)

    response = post(here, f"/accounts/sessions/{target.pk}/end/")

    assert response.status_code == 302
    assert get(there, "/accounts/")["Location"].startswith("/accounts/login/")
    assert get(here, "/accounts/").status_code == 200
    event = AuditEvent.objects.get(action="session.ended")
    assert event.actor_username == employee.username
    assert event.target == f"auth.user:{employee.pk}"
    assert event.details == {"sessions": [target.pk], "count": 1, "reason": "by_owner"}


def test_nobody_ends_someone_elses_session_from_the_page(employee, other_employee):
    here = signed_in_client(employee)
    theirs = signed_in_client(other_employee)

    post(here, f"/accounts/sessions/{session_of(theirs).pk}/end/")

    assert get(theirs, "/accounts/").status_code == 200
    assert not AuditEvent.objects.filter(action="session.ended").exists()


def test_the_current_session_is_not_ended_from_the_list(employee):
    here = signed_in_client(employee)

    response = post(here, f"/accounts/sessions/{session_of(here).pk}/end/")

    assert response.status_code == 302
    assert "Use Sign out" in get(here, "/accounts/sessions/").content.decode()
    assert get(here, "/accounts/").status_code == 200


def test_signing_out_all_others_keeps_only_this_one(employee):
    here = signed_in_client(employee)
    others = [signed_in_client(employee, SAFARI_ON_MAC) for _ in range(2)]

    post(here, "/accounts/sessions/end-others/")

    assert [s.pk for s in SignInSession.objects.filter(user=employee)] == [session_of(here).pk]
    for other in others:
        assert get(other, "/accounts/").status_code == 302
    assert AuditEvent.objects.get(action="session.ended").details["count"] == 2


def test_an_admin_ends_a_users_session_in_the_admin(employee, admin_user):
    admin = signed_in_client(admin_user)
    there = signed_in_client(employee)
    target = session_of(there)

    listing = get(admin, "/admin/accounts/signinsession/")
    assert listing.status_code == 200
    assert employee.username in listing.content.decode()
    post(
        admin,
        "/admin/accounts/signinsession/",
        {"action": "end_sessions", "_selected_action": [target.pk]},
    )

    assert get(there, "/accounts/")["Location"].startswith("/accounts/login/")
    event = AuditEvent.objects.get(action="session.ended")
    assert (event.actor_username, event.details["reason"]) == (admin_user.username, "by_admin")


def test_an_employee_cannot_see_the_sessions_admin(employee):
    client = signed_in_client(employee)
    assert get(client, "/admin/accounts/signinsession/").status_code in (302, 403)


@pytest.mark.django_db(transaction=True)
async def test_ending_one_session_closes_only_that_sessions_socket(employee):
    here, there = await sync_to_async(
        lambda: (signed_in_client(employee), signed_in_client(employee))
    )()
    sockets = []
    for client in (here, there):
        communicator = communicator_for(client)
        assert (await communicator.connect())[0]
        sockets.append(communicator)
    target = await sync_to_async(session_of)(there)

    await sync_to_async(services.end_session)(actor=employee, user=employee, session_id=target.pk)

    closed = await sockets[1].receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_SESSION_ENDED}
    await sockets[0].send_json_to({"ping": 1})
    assert await sockets[0].receive_json_from() == {"pong": 1}
    await sockets[0].disconnect()
    await sync_to_async(connections.close_all)()
