"""An employee uploads a PDF in Chromium, watches it being indexed, asks about a fact found
only in it and sees the page it came from, deletes it, and asks again without it."""

import pytest
from playwright.sync_api import expect

from tests.documents import files
from tests.e2e.conftest import Account, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]

ANSWER_TIMEOUT = 90_000  # ms: the first answer also waits for the model to load
FACT = "The visitor parking code for the north gate is 4417."


def ask(page, question):
    page.fill("#composer-input", question)
    # Enabled once the socket is open: Enter before that keeps the message unsent.
    expect(page.locator("#send-button")).to_be_enabled(timeout=30_000)
    page.press("#composer-input", "Enter")
    expect(page.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)


def test_an_employee_asks_a_pdf_sees_its_source_and_deletes_it(
    site, page_for, screenshots, tmp_path
):
    fiona = Account("fiona", "fiona's long passphrase 5")
    create_account(site, fiona.username, fiona.password)
    handbook = tmp_path / "visitor <guide>.pdf"
    handbook.write_bytes(files.pdf(["Welcome to the campus.", FACT]))
    page = page_for(site)
    sign_in(page, fiona)
    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute(
        "data-state", "ready", timeout=ANSWER_TIMEOUT
    )

    page.set_input_files("#documents-file", str(handbook))
    document = page.locator(".document").first
    expect(document.locator(".document-name")).to_have_text("visitor <guide>.pdf")
    expect(document).to_have_attribute("data-status", "ready", timeout=ANSWER_TIMEOUT)
    expect(document.locator(".document-status")).to_have_text("ready")
    expect(document.locator("input[type=checkbox]")).to_be_checked()
    screenshots.take(page, "indexed")

    ask(page, "What is the visitor parking code for the north gate?")
    answer = page.locator(".message-assistant").last
    source = answer.locator(".citations summary").first
    expect(source).to_have_text("visitor <guide>.pdf, page 2")
    quote = answer.locator(".citations blockquote").first
    expect(quote).to_be_hidden()
    source.click()
    expect(quote).to_contain_text("4417")
    screenshots.take(page, "answer-with-source")
    assert page.csp_violations == []

    document.locator(".document-delete").click()
    expect(page.locator(".document")).to_have_count(0)
    ask(page, "What is the visitor parking code for the north gate?")
    expect(page.locator(".message-assistant")).to_have_count(2)
    expect(page.locator(".message-assistant").last.locator(".citations")).to_have_count(0)
    # The first answer still shows its sources after a reload: they were stored with it.
    page.reload()
    expect(page.locator(".message-assistant").first.locator(".citations summary")).to_have_text(
        "visitor <guide>.pdf, page 2", timeout=ANSWER_TIMEOUT
    )
    screenshots.take(page, "after-delete")
