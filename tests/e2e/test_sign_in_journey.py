"""A newcomer's first sign-in, and a later one with a lost phone, in Chromium."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    Account,
    create_account,
    enrol_by_typing_the_key,
    password_step,
    sign_in,
)

pytestmark = [pytest.mark.e2e, pytest.mark.system]


def test_a_newcomer_enrols_saves_backup_codes_and_signs_out(site, page_for, screenshots):
    nina = Account("nina", "nina's long passphrase 1")
    create_account(site, nina.username, nina.password)
    page = page_for(site)

    page.goto("/")
    assert "/accounts/login/" in page.url
    screenshots.take(page, "sign-in")

    password_step(page, nina.username, nina.password)
    page.wait_for_selector(".qr svg")
    expect(page.locator("#id_code")).to_have_attribute("autocomplete", "one-time-code")
    screenshots.take(page, "enrol")

    page.fill("#id_code", "000000")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("That code is not right")
    page.wait_for_timeout(1100)  # the one-second wait after a wrong code

    nina.key, nina.backup_codes = enrol_by_typing_the_key(page)
    assert len(nina.backup_codes) == 10
    screenshots.take(page, "backup-codes")

    with page.expect_download() as download:
        page.click("#download-codes")
    saved = download.value.path().read_text()
    assert all(code in saved for code in nina.backup_codes)

    page.click("text=I have saved my codes")
    expect(page.locator("header .user-name")).to_have_text("nina")
    screenshots.take(page, "signed-in")

    page.click("header button:has-text('Sign out')")
    page.wait_for_url("**/accounts/login/")
    page.goto("/accounts/")
    assert "/accounts/login/" in page.url
    assert page.csp_violations == []


def test_a_wrong_code_then_a_backup_code(site, page_for, screenshots):
    olga = Account("olga", "olga's long passphrase 2")
    create_account(site, olga.username, olga.password)
    sign_in(page_for(site), olga)

    page = page_for(site)
    password_step(page, olga.username, olga.password)
    page.fill("#id_code", "123456")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not right")
    screenshots.take(page, "wrong-code")

    page.wait_for_timeout(1100)  # the one-second wait after a wrong code
    page.click("summary:has-text('Lost your phone?')")
    page.fill("#id_code", olga.backup_codes[0])
    page.click("button[type=submit]")
    expect(page.locator("header .user-name")).to_have_text("olga")

    page.goto("/accounts/")
    expect(page.locator("[data-codes-left]")).to_have_text("9")
    screenshots.take(page, "account-after-backup-code")
    assert page.csp_violations == []
