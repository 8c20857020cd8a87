"""Pin and archive conversations; a long list loads page by page as it scrolls."""

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in
from tests.support.server import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.system]

SEEDED = 70

SEED = """
import datetime
from django.contrib.auth import get_user_model
from django.utils import timezone
from chat.models import Conversation
user = get_user_model().objects.get(username="{username}")
now = timezone.now()
for n in range({count}):
    Conversation.objects.create(
        user=user, title=f"Seeded {{n}}", updated_at=now - datetime.timedelta(days=1, minutes=n)
    )
"""


def seed_conversations(site, username, count):
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SEED.format(username=username, count=count)],
        cwd=REPO,
        env=site.env,
        check=True,
        capture_output=True,
    )


def item(page, title):
    return page.locator(".conversation-item").filter(has=page.get_by_text(title, exact=True))


def act_on(page, title, action):
    entry = item(page, title)
    entry.get_by_role("button", name=f"Actions for \u201c{title}\u201d").click()
    entry.get_by_role("button", name=action).click()


def test_pin_archive_and_a_long_list_that_pages(echo_site, page_for, screenshots):
    site = echo_site
    omar = Account("omar", "omar's long passphrase 2")
    create_account(site, omar.username, omar.password)
    seed_conversations(site, omar.username, SEEDED)
    page = page_for(site)
    sign_in(page, omar)
    page.goto("/")

    items = page.locator("#conversation-list .conversation-item")
    expect(items).to_have_count(50)
    page.locator("#conversation-list .conversation-item").last.scroll_into_view_if_needed()
    expect(items).to_have_count(SEEDED)
    expect(page.locator("#load-more")).to_be_hidden()

    act_on(page, "Seeded 42", "Pin to the top")
    expect(items.first).to_contain_text("Pinned: Seeded 42")
    expect(items).to_have_count(SEEDED)
    expect(item(page, "Seeded 42")).to_have_count(1)

    act_on(page, "Seeded 3", "Archive")
    expect(item(page, "Seeded 3")).to_have_count(0)
    screenshots.take(page, "pinned-and-archived")

    page.get_by_role("button", name="Show archived conversations").click()
    expect(page.locator("#list-heading")).to_have_text("Archived conversations")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Seeded 3")
    act_on(page, "Seeded 3", "Move back from the archive")
    expect(items).to_have_count(0)
    expect(page.locator("#conversation-list-status")).to_have_text("No archived conversations.")

    page.get_by_role("button", name="Show your conversations").click()
    expect(items.first).to_contain_text("Seeded 42")
    expect(item(page, "Seeded 3")).to_have_count(1)

    # After a reload the pin stays.
    page.reload()
    expect(items.first).to_contain_text("Pinned: Seeded 42")
    assert page.csp_violations == []
