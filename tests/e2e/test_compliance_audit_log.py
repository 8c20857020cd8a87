"""A compliance officer works with the audit log in Chromium."""

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.support.personas import PASSWORD
from tests.support.server import free_port, manage, served_site, site_environment

pytestmark = [pytest.mark.e2e, pytest.mark.system]

CREATE_COMPLIANCE_OFFICER = f"""
from django.contrib.auth.models import Group, User
user = User.objects.create_user("carol", password={PASSWORD!r}, is_staff=True)
user.groups.add(Group.objects.get(name="Compliance"))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("var")
    with served_site(var_dir, free_port()) as running:
        manage("shell", "-c", CREATE_COMPLIANCE_OFFICER, env=site_environment(var_dir))
        yield running


@pytest.fixture
def page(site, browser_for):
    context = browser_for(site).new_context(base_url=f"https://localhost:{site.port}")
    page = context.new_page()
    page.csp_violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and page.csp_violations.append(message.text)
        ),
    )
    yield page
    context.close()


def sign_in(page, password):
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "carol")
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_a_compliance_officer_filters_opens_exports_and_verifies(page, screenshots):
    sign_in(page, "not the password")
    expect(page.locator(".errornote")).to_be_visible()
    screenshots.take(page, "wrong-password")

    sign_in(page, PASSWORD)
    page.wait_for_url("**/admin/")
    expect(page.locator("a", has_text="Audit events").first).to_be_visible()
    expect(page.locator("a", has_text="Users")).to_have_count(0)
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


def test_a_compliance_officer_cannot_open_the_user_admin(page, screenshots):
    sign_in(page, PASSWORD)
    page.wait_for_url("**/admin/")

    response = page.goto("/admin/auth/user/")

    assert response.status == 403
    assert "You are not allowed to open this page" in page.inner_text("main")
    screenshots.take(page, "users-refused")
