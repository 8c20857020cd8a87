"""An admin creates a user and resets another's two-step verification, in Chromium."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, create_account, password_step, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.system]


def test_an_admin_creates_a_user_and_resets_a_second_factor(site, page_for, screenshots):
    ada = Account("ada", "ada's long admin passphrase 5")
    create_account(site, ada.username, ada.password, "--admin")
    vera = Account("vera", "vera's long passphrase 6")
    create_account(site, vera.username, vera.password)
    sign_in(page_for(site), vera)  # vera enrols her authenticator

    admin = page_for(site)
    sign_in(admin, ada)
    admin.goto("/admin/auth/user/add/")
    admin.fill("#id_username", "newbie")
    admin.fill("#id_password1", "newbie's long passphrase 7")
    admin.fill("#id_password2", "newbie's long passphrase 7")
    admin.click("input[name=_save]")
    expect(admin.locator(".messagelist")).to_contain_text("newbie")
    screenshots.take(admin, "user-created")

    admin.goto("/admin/auth/user/")
    row = admin.locator("#result_list tr", has_text="vera")
    expect(row).to_contain_text("set up")
    row.locator("input.action-select").check()
    admin.select_option("select[name=action]", "reset_two_factor")
    admin.click("button[name=index]")
    admin.fill("#id_reason", "lost phone, identity checked by video call")
    screenshots.take(admin, "reset-reason")
    admin.click("input[value='Reset two-step verification']")
    expect(admin.locator(".messagelist")).to_contain_text("Two-step verification reset")
    expect(admin.locator("#result_list tr", has_text="vera")).to_contain_text("not set up")
    screenshots.take(admin, "reset-done")

    again = page_for(site)
    password_step(again, vera.username, vera.password)
    expect(again.locator(".qr svg")).to_be_visible()
    assert "/accounts/enrol/" in again.url
    screenshots.take(again, "vera-must-enrol-again")

    newbie = page_for(site)
    password_step(newbie, "newbie", "newbie's long passphrase 7")
    expect(newbie.locator(".qr svg")).to_be_visible()
    assert admin.csp_violations == []
