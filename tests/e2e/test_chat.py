"""An employee chats with the real model in Chromium: ask, watch the answer stream, stop a
long answer, copy an answer, find the conversation after a reload, rename it, export it, delete it."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]

ANSWER_TIMEOUT = 90_000  # ms: the first answer also waits for the model to load


def ask(page, question):
    page.fill("#composer-input", question)
    # Enabled once the socket is open: Enter before that keeps the message unsent.
    expect(page.locator("#send-button")).to_be_enabled(timeout=30_000)
    page.press("#composer-input", "Enter")


def test_an_employee_chats_stops_reloads_renames_exports_and_deletes(site, page_for, screenshots):
    erik = Account("erik", "erik's long passphrase 3")
    create_account(site, erik.username, erik.password)
    page = page_for(site)
    sign_in(page, erik)
    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute(
        "data-state", "ready", timeout=ANSWER_TIMEOUT
    )
    screenshots.take(page, "empty-chat")

    ask(page, "What is the capital of France?")
    answer = page.locator(".message-assistant").last
    expect(answer).to_contain_text("Paris", timeout=ANSWER_TIMEOUT)
    expect(page.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)
    screenshots.take(page, "first-answer")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = answer.get_by_role("button", name="Copy answer as Markdown")
    copy.click()
    expect(copy).to_contain_text("Copied")
    assert "Paris" in page.evaluate("navigator.clipboard.readText()")
    # Nothing of the question or the answer is in the database files on disk.
    for stored in site.var_dir.glob("db.sqlite3*"):
        data = stored.read_bytes()
        assert b"capital of France" not in data
        assert b"Paris" not in data

    ask(page, "Write a very long story about a lighthouse keeper and his cat.")
    expect(page.locator("#stop-button")).to_be_visible(timeout=ANSWER_TIMEOUT)
    long_answer = page.locator(".message-assistant").last
    expect(long_answer).not_to_have_text("", timeout=ANSWER_TIMEOUT)
    page.click("#stop-button")
    expect(long_answer.locator(".badge")).to_have_text("Stopped", timeout=ANSWER_TIMEOUT)
    screenshots.take(page, "stopped")

    page.reload()
    item = page.locator(".conversation-item").first
    expect(item).to_contain_text("What is the capital of France?")
    item.locator("a, button").first.click()
    expect(page.locator(".message-assistant")).to_have_count(2)
    expect(page.locator(".message-assistant").first).to_contain_text("Paris")
    expect(page.locator(".message-assistant").last.locator(".badge")).to_have_text("Stopped")
    screenshots.take(page, "after-reload")

    item.locator(".conversation-more").click()
    item.locator("[data-action=rename]").click()
    page.fill(".rename-input", "Geography")
    page.press(".rename-input", "Enter")
    expect(page.locator(".conversation-item").first).to_contain_text("Geography")

    item = page.locator(".conversation-item").first
    item.locator(".conversation-more").click()
    with page.expect_download() as download:
        item.locator("a[download]").first.click()
    exported = download.value.path().read_text()
    assert "Paris" in exported

    item.locator(".conversation-more").click()
    item.locator("[data-action=delete]").click()
    page.click("#delete-confirm")
    expect(page.locator(".conversation-item")).to_have_count(0)
    screenshots.take(page, "deleted")

    assert page.csp_violations == []
