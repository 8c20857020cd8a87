"""Regenerate an answer and flip between its versions, edit a question and ask again, all
with the keyboard only (send with Enter, stop with Escape, regenerate with Alt+R), against
the real model in Chromium."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]

ANSWER_TIMEOUT = 90_000  # ms: the first answer also waits for the model to load


LONG_QUESTION = "Write a very long story about a lighthouse keeper and his cat."


def stop_with_escape(page):
    """Wait for the answer to be written, press Escape, see it stopped with the keyboard
    back in the composer."""
    expect(page.locator("#stop-button")).to_be_visible(timeout=ANSWER_TIMEOUT)
    answer = page.locator(".message-assistant").last
    expect(answer.locator(".message-body")).not_to_have_text("", timeout=ANSWER_TIMEOUT)
    expect(page.locator("#composer-input")).to_be_focused()
    page.keyboard.press("Escape")
    expect(answer.locator(".badge")).to_have_text("Stopped", timeout=ANSWER_TIMEOUT)
    expect(page.locator("#composer-input")).to_be_focused()


def answer_finished(page):
    expect(page.locator(".message-assistant.is-streaming")).to_have_count(0, timeout=ANSWER_TIMEOUT)
    expect(page.locator("#send-button")).to_be_visible(timeout=ANSWER_TIMEOUT)


def test_regenerate_flip_versions_and_edit_with_the_keyboard(site, page_for, screenshots):
    valeria = Account("valeria", "valeria's long passphrase 7")
    create_account(site, valeria.username, valeria.password)
    page = page_for(site)
    sign_in(page, valeria)
    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute(
        "data-state", "ready", timeout=ANSWER_TIMEOUT
    )

    # Send with the keyboard, stop with Escape: the keyboard stays in the composer.
    page.locator("#composer-input").focus()
    page.keyboard.type(LONG_QUESTION)
    page.keyboard.press("Enter")
    stop_with_escape(page)
    first_answer = page.locator(".message-assistant").last.locator(".message-body").inner_text()

    # Alt+R regenerates; Escape stops the new version too.
    page.keyboard.press("Alt+r")
    stop_with_escape(page)
    answer = page.locator(".message-assistant").last
    expect(page.locator(".message-assistant")).to_have_count(1)
    expect(answer.locator(".version-position")).to_contain_text("2/2")
    screenshots.take(page, "regenerated-and-stopped")

    # The earlier version is one click (or Enter) away, and stays after a reload.
    previous = answer.get_by_role("button", name="Previous version")
    previous.focus()
    page.keyboard.press("Enter")
    answer = page.locator(".message-assistant").last
    expect(answer.locator(".version-position")).to_contain_text("1/2")
    expect(answer.locator(".message-body")).to_have_text(first_answer)
    expect(answer.get_by_role("button", name="Next version")).to_be_focused()
    page.reload()
    answer = page.locator(".message-assistant").last
    expect(answer.locator(".version-position")).to_contain_text("1/2")
    expect(answer.locator(".message-body")).to_have_text(first_answer)

    # The regenerate button, by keyboard, on the version shown.
    regenerate = answer.get_by_role("button", name="Regenerate this answer")
    regenerate.focus()
    page.keyboard.press("Enter")
    stop_with_escape(page)
    expect(page.locator(".message-assistant").last.locator(".version-position")).to_contain_text(
        "3/3"
    )

    # Edit the question: the conversation continues from the new one.
    question = page.locator(".message-user").first
    question.get_by_role("button", name="Edit this question and ask again").click()
    editor = page.get_by_label("Your question, edited")
    expect(editor).to_be_focused()
    editor.fill("What is the capital of France?")
    screenshots.take(page, "editing")
    page.keyboard.press("Control+Enter")
    answer_finished(page)
    question = page.locator(".message-user").first
    expect(question.locator(".message-body")).to_have_text("What is the capital of France?")
    expect(question.locator(".version-position")).to_contain_text("2/2")
    expect(page.locator(".message-assistant")).to_have_count(1)
    expect(page.locator(".message-assistant").last).to_contain_text("Paris")
    expect(page.locator(".message-assistant").last.locator(".versions")).to_have_count(0)
    screenshots.take(page, "edited")

    # The old question, with its three answers, is still there.
    question.get_by_role("button", name="Previous version").click()
    question = page.locator(".message-user").first
    expect(question.locator(".message-body")).to_have_text(LONG_QUESTION)
    expect(page.locator(".message-assistant").last.locator(".version-position")).to_contain_text(
        "3/3"
    )

    # Answer details on demand: tokens, time to first token, tokens per second.
    details = page.locator(".message-assistant").last.locator(".answer-details")
    details.locator("summary").click()
    expect(details).to_contain_text("Answer tokens")
    expect(details).to_contain_text("Time to first token")
    screenshots.take(page, "details")
    assert page.csp_violations == []
