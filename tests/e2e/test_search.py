"""Search finds an old message by a word only in its body, even in an earlier version, and
opens the conversation at it with the word highlighted; the word is written nowhere on the
server (database files, server log)."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, ask_echo, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]

CODEWORD = "Pelicanfeather"


def test_search_finds_a_word_in_an_old_message_and_opens_it_highlighted(
    echo_site, page_for, screenshots
):
    site = echo_site
    nadia = Account("nadia", "nadia's long passphrase 9")
    create_account(site, nadia.username, nadia.password)
    page = page_for(site)
    sign_in(page, nadia)
    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute("data-state", "ready")

    ask_echo(page, "Plans for the week")
    ask_echo(page, f"Please remember the codeword {CODEWORD}.")
    # The codeword's question is replaced by an edit: it lives on as an earlier version.
    question = page.locator(".message-user").last
    question.get_by_role("button", name="Edit this question and ask again").click()
    page.get_by_label("Your question, edited").fill("Never mind.")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".message-user").last.locator(".message-body")).to_have_text("Never mind.")
    page.click("#new-conversation")
    ask_echo(page, "Something else entirely")

    search = page.get_by_role("searchbox", name="Search your conversations")
    search.fill("pelican")
    results = page.get_by_role("list", name="Search results").get_by_role("link")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Plans for the week")
    expect(results.first.locator("mark")).to_have_text("Pelican")
    expect(page.locator("#search-status")).to_have_text("1 result.")
    screenshots.take(page, "results")

    results.first.click()
    found = page.locator(".message.is-found")
    expect(found).to_have_count(1)
    expect(found.locator(".message-body")).to_contain_text(CODEWORD)
    expect(found.locator("mark.search-mark")).to_have_text("Pelican")
    expect(found).to_be_focused()
    expect(found.locator(".version-position")).to_contain_text("1/2")
    expect(page.locator("#conversation-title")).to_have_text("Plans for the week")
    screenshots.take(page, "opened-at-the-message")

    # Nothing found says so, and Escape brings the list of conversations back.
    search.fill("zebracrossing")
    expect(page.locator("#search-status")).to_contain_text("Nothing found")
    search.press("Escape")
    expect(page.locator("#conversation-list")).to_be_visible()
    expect(page.locator(".conversation-item")).to_have_count(2)

    for stored in site.var_dir.glob("db.sqlite3*"):
        assert CODEWORD.lower().encode() not in stored.read_bytes().lower()
    assert "pelican" not in site.log().lower()
    assert page.csp_violations == []
