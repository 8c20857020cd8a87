"""A conversation's instructions change its answers; settings are checked next to each field;
presets are saved and used again. The site runs on the production profile (Redis, a
separate worker process) with a worker whose answer echoes the system prompt it was given,
so the test sees exactly what the model would have been told."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ECHO_SITE_PROMPT as SITE_PROMPT
from tests.e2e.conftest import Account, create_account, sign_in
from tests.e2e.conftest import ask_echo as ask

pytestmark = [pytest.mark.e2e, pytest.mark.system]

FRENCH = "Always answer in French."
HAIKU = "Answer in haiku."


def test_instructions_change_the_answer_and_presets_bring_them_back(
    echo_site, page_for, screenshots
):
    site = echo_site
    sofia = Account("sofia", "sofia's long passphrase 5")
    create_account(site, sofia.username, sofia.password)
    page = page_for(site)
    sign_in(page, sofia)
    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute("data-state", "ready")

    # Without instructions the model gets the site's prompt alone.
    expect(ask(page, "Hello")).to_have_text(f"System prompt: {SITE_PROMPT}")

    # Settings for the next conversation: a bad value is shown next to its field.
    page.click("#new-conversation")
    page.get_by_role("button", name="Settings for this conversation").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    expect(dialog.get_by_label("Instructions")).to_be_focused()
    dialog.get_by_label("Instructions").fill(FRENCH)
    dialog.get_by_label("Temperature").fill("5")
    dialog.get_by_role("button", name="Save settings").click()
    temperature = dialog.get_by_label("Temperature")
    expect(temperature).to_be_focused()
    expect(temperature).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#settings-temperature-error")).to_have_text(
        "Temperature must be a number from 0 to 2."
    )
    screenshots.take(page, "settings-error")
    temperature.fill("0.5")
    dialog.get_by_label("Save these settings as a preset").fill("French")
    dialog.get_by_role("button", name="Save preset").click()
    expect(dialog.locator("#preset-select option:checked")).to_have_text("French")
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()

    answer = ask(page, "Bonjour")
    expect(answer).to_have_text(f"System prompt: {SITE_PROMPT} {FRENCH}")
    screenshots.take(page, "answer-with-instructions")

    # Stored with the conversation: after a reload they are there; a change applies to the
    # next answer (here a regenerated one).
    page.reload()
    page.get_by_role("button", name="Settings for this conversation").click()
    expect(dialog.get_by_label("Instructions")).to_have_value(FRENCH)
    expect(dialog.get_by_label("Temperature")).to_have_value("0.5")
    dialog.get_by_label("Instructions").fill(HAIKU)
    dialog.get_by_role("button", name="Save settings").click()
    expect(dialog).to_be_hidden()
    page.keyboard.press("Alt+r")
    expect(page.locator(".message-assistant").last.locator(".message-body")).to_have_text(
        f"System prompt: {SITE_PROMPT} {HAIKU}", timeout=20_000
    )

    # A preset fills the form of a new conversation.
    page.click("#new-conversation")
    page.get_by_role("button", name="Settings for this conversation").click()
    dialog.get_by_label("Start from a preset").select_option(label="French")
    expect(dialog.get_by_label("Instructions")).to_have_value(FRENCH)
    dialog.get_by_role("button", name="Save settings").click()
    expect(ask(page, "Encore")).to_contain_text(f"{SITE_PROMPT} {FRENCH}")

    # Instructions and preset names are encrypted at rest.
    for stored in site.var_dir.glob("db.sqlite3*"):
        data = stored.read_bytes()
        assert FRENCH.encode() not in data
        assert HAIKU.encode() not in data
    assert page.csp_violations == []
