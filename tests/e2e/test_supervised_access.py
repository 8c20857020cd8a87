"""Supervised access in Chromium, with three people: alice chats; carol (Compliance) asks to
read alice's conversations, is refused once by dana (an approver) and approved the second
time; carol reads read-only until the access ends; alice is then told when and why."""

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in
from tests.support.server import REPO, free_port, served_site, site_environment

pytestmark = [pytest.mark.e2e, pytest.mark.system]

ANSWER_TIMEOUT = 90_000  # ms: the first answer also waits for the model to load
REFUSED_WHY = "Routine check of the sales team's use of the assistant."
APPROVED_WHY = "Case 2026-114: suspected leak of the pricing sheet, legal informed."


def shell(site, code: str) -> str:
    """What an operator would run with `manage.py shell` on the server."""
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO,
        env=site_environment(site.var_dir),
        text=True,
        check=True,
        capture_output=True,
    ).stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served_site(tmp_path_factory.mktemp("var"), free_port()) as running:
        create_account(running, "alice", "alice's long passphrase 1")
        create_account(running, "carol", "carol's long passphrase 2", "--compliance")
        create_account(running, "dana", "dana's long passphrase 3")
        # A superuser puts dana in the approvers group (in the admin, or as here).
        shell(
            running,
            "from django.conf import settings; from django.contrib.auth.models import Group, User;"
            " User.objects.get(username='dana').groups.add("
            "Group.objects.get(name=settings.SUPERVISED_ACCESS_APPROVERS))",
        )
        yield running


def request_access(page, justification: str) -> None:
    page.goto("/supervision/")
    page.fill("#id_username", "alice")
    page.fill("#id_justification", justification)
    page.fill("#id_hours", "1")
    page.click("text=Ask for approval")
    expect(page.locator(".alert.success")).to_contain_text("waits for an approver")


def test_request_refusal_approval_supervised_reading_expiry_and_the_user_told(
    site, page_for, screenshots
):
    alice, carol, dana = (
        Account("alice", "alice's long passphrase 1"),
        Account("carol", "carol's long passphrase 2"),
        Account("dana", "dana's long passphrase 3"),
    )
    user, requester, approver = page_for(site), page_for(site), page_for(site)

    # alice chats with the model.
    sign_in(user, alice)
    user.goto("/")
    user.fill("#composer-input", "What is the capital of France?")
    # Enabled once the socket is open: Enter before that keeps the message unsent.
    expect(user.locator("#send-button")).to_be_enabled(timeout=ANSWER_TIMEOUT)
    user.press("#composer-input", "Enter")
    expect(user.locator(".message-assistant").last).to_contain_text("Paris", timeout=ANSWER_TIMEOUT)
    expect(user.locator("#stop-button")).to_be_hidden(timeout=ANSWER_TIMEOUT)

    # carol asks; dana refuses with a reason, which carol then reads.
    sign_in(requester, carol)
    request_access(requester, REFUSED_WHY)
    expect(requester.locator("[data-own-requests] [data-state]")).to_have_text(
        ["Waiting for approval"]
    )
    screenshots.take(requester, "requested")
    sign_in(approver, dana)
    approver.goto("/supervision/")
    pending = approver.locator("[data-awaiting] .access")
    expect(pending).to_have_count(1)
    expect(pending).to_contain_text(REFUSED_WHY)
    pending.locator("input[name=reason]").fill("No case number: say which case this is for.")
    pending.locator("text=Refuse").click()
    expect(approver.locator("[data-awaiting-none]")).to_be_visible()
    screenshots.take(approver, "refused")
    requester.reload()
    expect(requester.locator("[data-own-requests] [data-state]")).to_contain_text(
        ["Refused by dana: No case number: say which case this is for."]
    )
    expect(requester.locator("text=Read conversations")).to_have_count(0)

    # carol asks again with the case; dana approves.
    request_access(requester, APPROVED_WHY)
    approver.goto("/supervision/")
    expect(approver.locator("[data-awaiting] .access")).to_contain_text(APPROVED_WHY)
    approver.locator("[data-awaiting] .access button", has_text="Approve").click()
    expect(approver.locator(".alert.success")).to_contain_text(
        "carol may read alice's conversations for 1 hours"
    )

    # carol reads, read-only, under the banner.
    requester.reload()
    requester.click("text=Read conversations")
    expect(requester.locator(".supervision-banner")).to_contain_text("Read-only, supervised")
    requester.locator("[data-conversations] a", has_text="capital of France").click()
    transcript = requester.locator("[data-transcript]")
    expect(transcript).to_contain_text("What is the capital of France?")
    expect(transcript).to_contain_text("Paris")
    expect(requester.locator("textarea, #composer-input")).to_have_count(0)
    screenshots.take(requester, "reading")
    reading_url = requester.url

    # Nobody else reads under it: not the approver.
    response = approver.goto(reading_url)
    assert response.status == 403
    # While it is open, alice is not told yet.
    user.goto("/accounts/")
    expect(user.locator("[data-supervised-access]")).to_have_count(0)

    # The hour passes.
    shell(
        site,
        "import datetime; from django.utils import timezone; from chat.models import "
        "SupervisedAccess; SupervisedAccess.objects.filter(status='approved').update("
        "ends_at=timezone.now() - datetime.timedelta(seconds=1))",
    )
    response = requester.goto(reading_url)
    assert response.status == 403
    expect(requester.locator("main")).to_contain_text("This access ended at")
    screenshots.take(requester, "ended")

    # alice sees when and why; the refused request never opened anything, so it is not shown.
    user.goto("/accounts/")
    notice = user.locator("[data-supervised-access]")
    expect(notice).to_contain_text(APPROVED_WHY)
    expect(notice).to_contain_text("read 2 times")
    expect(notice).not_to_contain_text(REFUSED_WHY)
    screenshots.take(user, "told")

    # Every step is in the audit log, which carol can read.
    expected = {"access.requested": 2, "access.refused": 1, "access.approved": 1, "access.used": 2}
    for action, count in expected.items():
        requester.goto(f"/admin/audit/auditevent/?action={action}")
        actions = requester.locator("#result_list td.field-action, #result_list th.field-action")
        expect(actions).to_have_text([action] * count)
    for page in (user, requester, approver):
        assert page.csp_violations == []
