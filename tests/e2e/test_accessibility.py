"""axe-core finds no serious or critical accessibility problem on the sign-in, enrolment,
code, chat and account pages, in the light and the dark theme; the theme button is
remembered; keyboard focus is visible.

axe-core is vendored under tests/e2e/vendor (never served) and evaluated in the page by
Playwright, which the page's Content-Security-Policy does not govern."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    Account,
    ask_echo,
    create_account,
    enrol_by_typing_the_key,
    password_step,
    sign_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.system]

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
THEMES = ("light", "dark")


def serious_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => ({ id: v.id, help: v.help,
                               targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
        }"""
    )
    return [f"{v['id']}: {v['help']} at {', '.join(v['targets'])}" for v in violations]


def check_both_themes(page, screenshots, name: str) -> dict:
    problems = {}
    for theme in THEMES:
        page.emulate_media(color_scheme=theme)
        page.wait_for_timeout(100)  # let the transitions and the new colours settle
        problems[f"{name} ({theme})"] = serious_problems(page)
        screenshots.take(page, f"{name}-{theme}")
    return {where: found for where, found in problems.items() if found}


def test_no_serious_accessibility_problem_on_any_page_in_either_theme(
    echo_site, page_for, screenshots
):
    site = echo_site
    lena = Account("lena", "lena's long passphrase 8")
    create_account(site, lena.username, lena.password)
    page = page_for(site)
    found = {}

    page.goto("/accounts/login/")
    # The harness sees a problem when there is one: a button without a name.
    page.evaluate(
        "document.body.appendChild(Object.assign(document.createElement('button'), {id: 'x'}))"
    )
    assert any(line.startswith("button-name") for line in serious_problems(page))
    page.evaluate("document.getElementById('x').remove()")
    found |= check_both_themes(page, screenshots, "sign-in")

    password_step(page, lena.username, lena.password)
    page.wait_for_selector(".secret-key")
    found |= check_both_themes(page, screenshots, "enrolment")
    lena.key, lena.backup_codes = enrol_by_typing_the_key(page)
    found |= check_both_themes(page, screenshots, "backup-codes")
    page.click("text=I have saved my codes")
    page.wait_for_selector("header .user-name")

    page.goto("/")
    expect(page.locator("#worker-status")).to_have_attribute("data-state", "ready")
    found |= check_both_themes(page, screenshots, "chat-empty")
    ask_echo(page, "Hello, who are you?")
    page.keyboard.press("Alt+r")
    expect(page.locator(".message-assistant .version-position")).to_contain_text("2/2")
    page.locator(".answer-details summary").last.click()
    found |= check_both_themes(page, screenshots, "chat-conversation")
    page.get_by_role("button", name="Settings for this conversation").click()
    page.get_by_label("Temperature").fill("9")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-temperature-error")).to_be_visible()
    found |= check_both_themes(page, screenshots, "chat-settings")
    page.keyboard.press("Escape")
    page.get_by_role("searchbox", name="Search your conversations").fill("hello")
    expect(page.locator(".search-result")).to_have_count(2)  # the title and the question
    found |= check_both_themes(page, screenshots, "chat-search")

    page.goto("/accounts/")
    found |= check_both_themes(page, screenshots, "account")

    # The code step of a later sign-in.
    page.context.clear_cookies()
    password_step(page, lena.username, lena.password)
    page.wait_for_selector("#id_code")
    found |= check_both_themes(page, screenshots, "code")

    assert found == {}, "\n".join(
        f"{where}: {line}" for where, lines in found.items() for line in lines
    )
    assert page.csp_violations == []


def test_the_chosen_theme_is_remembered_and_system_stays_the_default(
    echo_site, page_for, screenshots
):
    site = echo_site
    theo = Account("theo", "theo's long passphrase 6")
    create_account(site, theo.username, theo.password)
    page = page_for(site)
    page.emulate_media(color_scheme="light")
    sign_in(page, theo)
    page.goto("/")

    def background():
        return page.evaluate("getComputedStyle(document.body).backgroundColor")

    light = background()
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_have_accessible_name("Colour theme: same as the system. Change to light.")
    toggle.click()  # light
    toggle.click()  # dark
    expect(toggle).to_have_accessible_name("Colour theme: dark. Change to same as the system.")
    dark = background()
    assert dark != light
    screenshots.take(page, "dark-chosen")

    # Remembered on every page of the site, from the first paint.
    page.goto("/accounts/")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert background() == dark
    page.goto("/")
    toggle.click()  # back to the system's, which is light here
    assert page.evaluate("document.documentElement.dataset.theme") is None
    assert background() == light
    page.emulate_media(color_scheme="dark")
    assert background() == dark
    assert page.csp_violations == []
