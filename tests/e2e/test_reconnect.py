"""The web process restarts under a signed-in employee: the page says so, reconnects by
itself, and the conversation carries on intact."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in
from tests.support.server import free_port, served_site

pytestmark = [pytest.mark.e2e, pytest.mark.system]

ANSWER_TIMEOUT = 90_000  # ms: an answer may also wait for the model to load
# The page retries after 1, 2, 4, 8 ... s; the new process serves within seconds.
RECONNECT_TIMEOUT = 60_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site of this module's own: the test restarts it."""
    with served_site(tmp_path_factory.mktemp("var"), free_port()) as running:
        yield running


def ask(page, question):
    expect(page.locator("#worker-status")).to_have_attribute(
        "data-state", "ready", timeout=ANSWER_TIMEOUT
    )
    page.fill("#composer-input", question)
    # Enabled once the socket is open: Enter before that keeps the message unsent.
    expect(page.locator("#send-button")).to_be_enabled(timeout=ANSWER_TIMEOUT)
    page.press("#composer-input", "Enter")


def test_the_page_reconnects_after_a_web_restart_and_the_conversation_goes_on(
    site, page_for, screenshots
):
    nadia = Account("nadia", "nadia's long passphrase 5")
    create_account(site, nadia.username, nadia.password)
    page = page_for(site)
    sign_in(page, nadia)
    page.goto("/")
    ask(page, "What is the capital of France?")
    expect(page.locator(".message-assistant").last).to_contain_text("Paris", timeout=ANSWER_TIMEOUT)
    expect(page.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)
    conversation_url = page.url

    site.stop()
    banner = page.locator("#connection-banner")
    expect(banner).to_be_visible(timeout=RECONNECT_TIMEOUT)
    expect(banner).to_contain_text("Connection to the server lost")
    screenshots.take(page, "connection-lost")

    site.restart()
    expect(banner).to_be_hidden(timeout=RECONNECT_TIMEOUT)
    screenshots.take(page, "reconnected")
    # Same page, same conversation, nothing lost, and it takes the next question.
    assert page.url == conversation_url
    expect(page.locator(".message-assistant")).to_have_count(1)
    ask(page, "And what is the capital of Italy?")
    expect(page.locator(".message-assistant")).to_have_count(2, timeout=ANSWER_TIMEOUT)
    expect(page.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)
    expect(page.locator(".message-assistant").last).not_to_have_text("")

    page.reload()
    expect(page.locator(".message-user")).to_have_count(2)
    expect(page.locator(".message-assistant").first).to_contain_text("Paris")
    screenshots.take(page, "after-reload")
    assert page.csp_violations == []
