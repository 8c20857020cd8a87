"""Two browsers signed in as the same person: one sees both sessions and signs the other
out, whose open chat socket closes at once and whose next request goes to sign-in."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]


def test_a_session_ended_from_another_browser_closes_its_chat_socket_and_signs_it_out(
    site, page_for, screenshots
):
    sam = Account("sam", "sam's long passphrase 31")
    create_account(site, sam.username, sam.password)
    laptop = page_for(site)
    sign_in(laptop, sam)
    phone = page_for(site)
    sign_in(phone, sam)
    with phone.expect_websocket() as opened:
        phone.goto("/")
    socket = opened.value
    assert "/ws/chat/" in socket.url
    closed = []
    socket.on("close", lambda _: closed.append(time.monotonic()))

    laptop.goto("/accounts/sessions/")
    sessions = laptop.locator("[data-session]")
    expect(sessions).to_have_count(2)
    expect(laptop.locator("[data-session].current")).to_contain_text("This session")
    expect(sessions.first).to_contain_text("Chrome")
    screenshots.take(laptop, "two-sessions")
    other = laptop.locator("[data-session]:not(.current)")
    clicked_at = time.monotonic()
    other.get_by_role("button", name="Sign out this session").click()
    expect(laptop.locator(".alert")).to_contain_text("That session was signed out.")
    expect(laptop.locator("[data-session]")).to_have_count(1)

    if not closed:
        socket.wait_for_event("close", timeout=10_000)
    assert closed and closed[0] - clicked_at < 5, "the socket closed at once, not at a re-check"
    # The page reloads when its socket closes for an ended session, and lands on sign-in.
    expect(phone).to_have_url(re.compile(r"/accounts/login/"), timeout=10_000)
    phone.goto("/accounts/")
    expect(phone).to_have_url(re.compile(r"/accounts/login/"))
    laptop.goto("/accounts/")
    expect(laptop.locator("h1")).to_have_text("Your account")
    screenshots.take(phone, "signed-out")
    assert laptop.csp_violations == [] and phone.csp_violations == []
