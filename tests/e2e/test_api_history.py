"""On a site that keeps API calls (API_STORE_CONVERSATIONS=true), a call made with the
official `openai` client shows in the caller's history in Chromium with an "API" badge and
the token's name (as text, however it is written), in the list and in search results, and
the conversation says which token started it; a conversation started on the page has
neither."""

import openai
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, ask_echo, create_account, echo_site_in, sign_in
from tests.e2e.test_accessibility import check_both_themes
from tests.support.inference import EchoEngine
from tests.support.server import manage

pytestmark = [pytest.mark.e2e, pytest.mark.system]

# Markup in a token's name must stay text on the page.
TOKEN_NAME = "Notebook <b>bold</b>"
ECHO_MODEL = EchoEngine.model_name


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with echo_site_in(
        tmp_path_factory.mktemp("api-history"), API_STORE_CONVERSATIONS="true"
    ) as running:
        yield running


def openai_client(site, token: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=token,
        base_url=f"https://localhost:{site.port}/v1",
        http_client=openai.DefaultHttpxClient(verify=site.tls_context()),
        max_retries=0,
        timeout=60,
    )


def test_a_kept_api_call_shows_in_the_history_with_its_token(site, page_for, screenshots):
    greta = Account("greta", "greta's long passphrase 5")
    create_account(site, greta.username, greta.password)
    page = page_for(site)
    sign_in(page, greta)  # enrols her authenticator app, which a token needs
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute("data-state", "ready")
    ask_echo(page, "A question typed on the page")
    out = manage(
        "create_api_token", "greta", "--name", TOKEN_NAME, "--scopes", "models,chat", env=site.env
    )
    token = out.strip().splitlines()[-1]
    client = openai_client(site, token)
    model = ECHO_MODEL
    assert ECHO_MODEL in [m.id for m in client.models.list()]

    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "A question sent through the API"}]
    )

    assert answer.choices[0].message.content
    page.goto("/")
    items = page.locator(".conversation-item")
    expect(items).to_have_count(2)
    from_api = items.filter(has_text="A question sent through the API")
    from_page = items.filter(has_text="A question typed on the page")
    badge = from_api.locator(".origin-badge")
    expect(badge).to_be_visible()
    expect(badge.locator(".origin-badge-kind")).to_have_text("API")
    expect(badge.locator(".origin-badge-token")).to_have_text(TOKEN_NAME)
    expect(badge.locator("b")).to_have_count(0)
    expect(from_page.locator(".origin-badge")).to_have_count(0)
    screenshots.take(page, "history-with-an-api-call")

    # Search results carry the same badge, as text; a result from the page has none.
    search = page.get_by_role("searchbox", name="Search your conversations")
    search.fill("through")
    results = page.locator(".search-result")
    expect(results).not_to_have_count(0)
    expect(results.locator(".origin-badge-token").first).to_have_text(TOKEN_NAME)
    expect(results.locator(".origin-badge b")).to_have_count(0)
    screenshots.take(page, "search-result-from-an-api-call")
    search.fill("typed")
    # Its title and its question: both from the page, neither with a badge.
    expect(page.locator("#search-status")).to_have_text("2 results.")
    expect(page.locator(".search-result .origin-badge")).to_have_count(0)
    search.press("Escape")
    expect(page.locator("#conversation-list")).to_be_visible()

    from_api.locator(".conversation-link").click()
    expect(page.locator("#conversation-origin")).to_be_visible()
    expect(page.locator("#conversation-origin")).to_contain_text(
        f"Started by an API call with the token \u201c{TOKEN_NAME}\u201d (llm-"
    )
    expect(page.locator(".message-user")).to_contain_text("A question sent through the API")
    assert check_both_themes(page, screenshots, "conversation-from-the-api") == {}
    from_page.locator(".conversation-link").click()
    expect(page.locator("#conversation-origin")).to_be_hidden()
    assert page.csp_violations == [] and errors == []
