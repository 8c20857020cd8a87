"""In Chromium: an employee downloads their data; Compliance places a legal hold that stops
an admin's erasure and the user page says so; once the hold is lifted, the admin erases."""

import io
import json
import zipfile

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]


def run_action(page, row_text: str, action: str) -> None:
    page.locator("#result_list tr", has_text=row_text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_a_hold_stops_an_erasure_until_lifted_and_the_user_can_take_their_data(
    site, page_for, screenshots
):
    uma = Account("uma", "uma's long passphrase 11")
    cleo = Account("cleo", "cleo's long passphrase 12")
    hank = Account("hank", "hank's long admin passphrase 13")
    create_account(site, uma.username, uma.password)
    create_account(site, cleo.username, cleo.password, "--compliance")
    create_account(site, hank.username, hank.password, "--admin")

    user = page_for(site)
    sign_in(user, uma)
    user.goto("/accounts/")
    with user.expect_download() as download:
        user.click("button:has-text('Download your data')")
    with zipfile.ZipFile(io.BytesIO(download.value.path().read_bytes())) as archive:
        account = json.loads(archive.read("account/account.json"))
    assert account["username"] == "uma"
    screenshots.take(user, "account-page")

    compliance = page_for(site)
    sign_in(compliance, cleo)
    compliance.goto("/admin/accounts/legalhold/add/")
    compliance.select_option("#id_user", label="uma")
    compliance.fill("#id_case_reference", "CASE-2026-7")
    compliance.click("input[name=_save]")
    expect(compliance.locator("#result_list")).to_contain_text("CASE-2026-7")
    screenshots.take(compliance, "hold-placed")

    admin = page_for(site)
    sign_in(admin, hank)
    admin.goto("/admin/auth/user/")
    expect(admin.locator("#result_list tr", has_text="uma")).to_contain_text("in place")
    admin.locator("#result_list a", has_text="uma").click()
    expect(admin.locator(".messagelist")).to_contain_text(
        "Legal hold in place for uma (case CASE-2026-7"
    )
    admin.goto("/admin/auth/user/")
    run_action(admin, "uma", "erase")
    expect(admin.locator("#content-main")).to_contain_text("under a legal hold and are skipped")
    expect(admin.locator("input[value='Erase for good']")).to_have_count(0)
    screenshots.take(admin, "erasure-refused")

    compliance.goto("/admin/accounts/legalhold/")
    run_action(compliance, "CASE-2026-7", "lift")
    expect(compliance.locator(".messagelist")).to_contain_text("Lifted 1 legal hold")

    admin.goto("/admin/auth/user/")
    run_action(admin, "uma", "erase")
    admin.fill("#id_reason", "erasure request 2026-118")
    admin.check("#id_confirm_final")
    admin.click("input[value='Erase for good']")
    expect(admin.locator(".messagelist")).to_contain_text("Erased 1 user(s)")
    expect(admin.locator("#result_list")).to_contain_text("erased-")
    expect(admin.locator("#result_list tr", has_text="uma")).to_have_count(0)
    screenshots.take(admin, "erased")
    assert user.csp_violations == compliance.csp_violations == admin.csp_violations == []
