"""A compliance officer works with the audit log in Chromium."""

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, password_step, sign_in
from tests.support.server import free_port, served_site

pytestmark = [pytest.mark.e2e, pytest.mark.system]

PASSWORD = "compliance passphrase 2026"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served_site(tmp_path_factory.mktemp("var"), free_port()) as running:
        create_account(running, "carol", PASSWORD, "--compliance")
        yield running


@pytest.fixture(scope="module")
def carol():
    return Account("carol", PASSWORD)


def test_a_compliance_officer_filters_opens_exports_and_verifies(
    site, page_for, screenshots, carol
):
    page = page_for(site)
    password_step(page, "carol", "not the password")
    expect(page.locator(".alert.error")).to_be_visible()
    screenshots.take(page, "wrong-password")

    sign_in(page, carol)
    page.goto("/admin/")
    expect(page.locator("a", has_text="Audit events").first).to_be_visible()
    expect(page.locator("#content-main a", has_text="Users")).to_have_count(0)
    screenshots.take(page, "admin-index")

    page.click("text=Audit events")
    page.wait_for_selector("#result_list")
    screenshots.take(page, "audit-list")

    page.locator("#changelist-filter a", has_text="login.failure").click()
    page.wait_for_url("**action=login.failure**")
    actions = page.locator("#result_list td.field-action, #result_list th.field-action")
    expect(actions).to_have_text(["login.failure"])
    screenshots.take(page, "filtered-login-failures")

    page.locator("#result_list a", has_text="login.failure").first.click()
    page.wait_for_selector("pre.audit-details")
    assert "carol" in page.inner_text("pre.audit-details")
    screenshots.take(page, "event-detail")

    page.go_back()
    with page.expect_download() as download:
        page.click("a.audit-export-csv")
    exported = download.value.path().read_text()
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [row["action"] for row in rows] == ["login.failure"]

    page.click("text=Verify chain")
    page.click("input[value='Verify now']")
    expect(page.locator(".audit-verdict")).to_contain_text("Intact.")
    screenshots.take(page, "verified")

    assert page.csp_violations == []


def test_a_compliance_officer_cannot_open_the_user_admin(site, page_for, screenshots, carol):
    page = page_for(site)
    sign_in(page, carol)

    response = page.goto("/admin/auth/user/")

    assert response.status == 403
    assert "You are not allowed to open this page" in page.inner_text("main")
    screenshots.take(page, "users-refused")
