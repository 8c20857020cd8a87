"""The composer refuses, before sending, a message whose frame the server would not take.

A site that allows long messages (CHAT_MAX_MESSAGE_CHARS above what fits in the web
server's 1 MiB websocket message) must not let the page send one that does not fit: the
server would close the socket, and the page would only say the connection dropped.
"""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in
from tests.support.server import free_port, served_site

pytestmark = [pytest.mark.e2e, pytest.mark.system]

MAX_CHARS = 500_000
# Within the character limit, but three UTF-8 bytes each: about 1.2 MB on the wire.
TOO_LARGE = "\u20ac" * 400_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site of this module's own that allows messages longer than fit in one frame."""
    with served_site(
        tmp_path_factory.mktemp("var"), free_port(), CHAT_MAX_MESSAGE_CHARS=str(MAX_CHARS)
    ) as running:
        yield running


def test_a_message_over_the_frame_limit_is_refused_with_a_sentence_and_never_sent(
    site, page_for, screenshots
):
    olga = Account("olga", "olga's long passphrase 7")
    create_account(site, olga.username, olga.password)
    page = page_for(site)
    sign_in(page, olga)
    sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto("/")

    page.fill("#composer-input", TOO_LARGE)
    expect(page.locator("#send-button")).to_be_enabled(timeout=30_000)
    page.press("#composer-input", "Enter")

    error = page.locator("#composer-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("too large to send")
    expect(error).to_contain_text("Shorten it or split it into several messages.")
    screenshots.take(page, "refused")
    # Nothing went out, the socket stays open, and the text is kept for the user to shorten.
    page.wait_for_timeout(1000)
    assert not [frame for frame in sent if "chat.send" in str(frame)[:200]]
    expect(page.locator(".message-user")).to_have_count(0)
    expect(page.locator("#connection-banner")).to_be_hidden()
    assert page.input_value("#composer-input") == TOO_LARGE
    assert page.csp_violations == []
    assert errors == []
