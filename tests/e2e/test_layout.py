"""The chat page at a phone's 360 px and a tablet's width, in both themes, with every new
control in use: nothing scrolls sideways except inside code blocks. Screenshots of each go
to var/e2e/."""

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in
from tests.support.server import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.system]

SIZES = {"phone": (360, 740), "tablet": (820, 1180)}

SEED = """
from django.contrib.auth import get_user_model
from chat import services
user = get_user_model().objects.get(username="{username}")
answer = (
    "Here is the script you asked for, with a very long line:\\n\\n"
    "```python\\nprint('" + "x" * 300 + "')\\n```\\n\\n"
    "And a long word: " + "Donaudampfschifffahrtsgesellschaftskapitän" * 3 + "."
)
turn = services.start_turn(
    actor=user, conversation_id=None, content="Write a script with a long line", model_name="m"
)
services.finish_answer(message_id=turn.answer.pk, content=answer, finish_reason="stop",
                       prompt_tokens=12, completion_tokens=80, time_to_first_token_ms=140,
                       duration_ms=2100)
again = services.regenerate(actor=user, conversation_id=turn.conversation.pk, model_name="m")
services.finish_answer(message_id=again.answer.pk, content=answer, finish_reason="stop",
                       prompt_tokens=12, completion_tokens=81, time_to_first_token_ms=150,
                       duration_ms=2200)
print("conversation", turn.conversation.pk)
"""

OVERFLOW = """() => {
    const width = document.documentElement.clientWidth;
    const wide = [];
    for (const node of document.querySelectorAll("body *")) {
        // The skip link waits off-screen until it has the focus, by design.
        if (node.closest("pre, .markdown table, .skip-link")
            || !node.checkVisibility({visibilityProperty: true})) {
            continue;
        }
        const box = node.getBoundingClientRect();
        if (box.width > 1 && box.height > 1 && (box.right > width + 1 || box.left < -1)) {
            wide.push(node.tagName.toLowerCase() + "." + node.className + " " + Math.round(box.right));
        }
    }
    return { scrolls: document.documentElement.scrollWidth > width, wide: wide.slice(0, 10) };
}"""


def no_sideways_scroll(page, where):
    found = page.evaluate(OVERFLOW)
    assert found == {"scrolls": False, "wide": []}, where


def test_phone_and_tablet_layouts_in_both_themes(echo_site, page_for, screenshots):
    site = echo_site
    pia = Account("pia", "pia's long passphrase 1")
    create_account(site, pia.username, pia.password)
    conversation = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SEED.format(username=pia.username)],
            cwd=REPO,
            env=site.env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.split("conversation ")[-1]
        .strip()
    )
    page = page_for(site)
    sign_in(page, pia)

    for device, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for theme in ("light", "dark"):
            page.emulate_media(color_scheme=theme)
            name = f"{device}-{theme}"
            page.goto("/")
            page.goto(f"/#c/{conversation}")
            answer = page.locator(".message-assistant").last
            expect(answer.locator(".version-position")).to_contain_text("2/2")
            answer.locator(".answer-details summary").click()
            expect(answer.locator(".answer-details")).to_contain_text("Answer tokens")
            code = answer.locator("pre code")
            # The code block scrolls inside itself.
            assert code.evaluate("(c) => c.scrollWidth > c.clientWidth")
            no_sideways_scroll(page, f"{name}: conversation")
            screenshots.take(page, f"{name}-conversation")

            page.locator(".message-user").first.get_by_role(
                "button", name="Edit this question and ask again"
            ).click()
            no_sideways_scroll(page, f"{name}: editing")
            page.keyboard.press("Escape")

            page.get_by_role("button", name="Settings for this conversation").click()
            dialog = page.get_by_role("dialog", name="Conversation settings")
            expect(dialog).to_be_visible()
            no_sideways_scroll(page, f"{name}: settings")
            screenshots.take(page, f"{name}-settings")
            dialog.get_by_role("button", name="Cancel").click()

            if device == "phone":
                page.get_by_role("button", name="Show conversations").click()
                expect(page.locator("#chat-sidebar")).to_be_visible()
            page.get_by_role("searchbox", name="Search your conversations").fill("script")
            expect(page.locator(".search-result")).not_to_have_count(0)
            no_sideways_scroll(page, f"{name}: search")
            screenshots.take(page, f"{name}-search")
    assert page.csp_violations == []
