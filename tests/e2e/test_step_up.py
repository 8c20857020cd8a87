"""Step-up in Chromium: adding a passkey, making new backup codes and changing the password
each ask for a second factor in place once the sign-in's is older than STEP_UP_SECONDS, and
return to the action (with a backup code, or with a passkey)."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, audit, create_account, password_step, sign_in
from tests.support.server import free_port, served_site
from tests.support.webauthn import credentials, virtual_authenticator

pytestmark = [pytest.mark.e2e, pytest.mark.system]

STEP_UP_SECONDS = 30  # the least the setting allows, so the test waits as little as it can


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with served_site(
        tmp_path_factory.mktemp("var"), free_port(), STEP_UP_SECONDS=str(STEP_UP_SECONDS)
    ) as running:
        yield running


def sign_in_with_backup_code(page, account: Account, code: str) -> None:
    password_step(page, account.username, account.password)
    page.fill("#id_code", code)
    page.get_by_role("button", name="Verify").click()
    page.wait_for_selector("header .user-name")


def expect_prompt_then_confirm(page, path: str, code: str) -> None:
    page.goto(path)
    expect(page.locator("[data-step-up]")).to_be_visible()
    page.fill("#id_code", code)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    expect(page.locator("[data-step-up]")).to_have_count(0)


def test_each_protected_action_asks_for_a_fresh_second_factor_in_place(site, page_for, screenshots):
    ines = Account("ines", "ines's long passphrase 8")
    create_account(site, ines.username, ines.password)
    first = page_for(site)
    cdp, authenticator = virtual_authenticator(first)
    sign_in(first, ines)
    second = page_for(site)
    sign_in_with_backup_code(second, ines, ines.backup_codes[0])
    third = page_for(site)
    sign_in_with_backup_code(third, ines, ines.backup_codes[1])
    signed_in_at = time.monotonic()
    # A page opened while the second factor is fresh goes straight to the action.
    third.goto("/accounts/password/")
    expect(third.locator("#id_old_password")).to_be_visible()
    # Let every session's second factor grow older than STEP_UP_SECONDS.
    first.wait_for_timeout((signed_in_at + STEP_UP_SECONDS + 1 - time.monotonic()) * 1000)

    # Adding a passkey: a backup code at the prompt, back to naming it, then registered.
    expect_prompt_then_confirm(first, "/accounts/passkeys/add/", ines.backup_codes[2])
    first.fill("#passkey-name", "YubiKey")
    first.get_by_role("button", name="Next").click()
    first.get_by_role("button", name="Register the passkey").click()
    expect(first.locator("[data-passkey]")).to_contain_text("YubiKey")

    # New backup codes: the prompt, then the page with the button.
    second.goto("/accounts/backup-codes/")
    screenshots.take(second, "step-up-prompt")
    expect_prompt_then_confirm(second, "/accounts/backup-codes/", ines.backup_codes[3])
    second.get_by_role("button", name="Make new backup codes").click()
    expect(second.locator("[data-backup-codes] code")).to_have_count(10)

    # Changing the password: the prompt answered with the passkey this time.
    [credential] = credentials(cdp, authenticator)
    virtual_authenticator(third, credential)
    third.reload()
    expect(third.locator("[data-step-up]")).to_be_visible()
    third.get_by_role("button", name="Use a passkey").click()
    expect(third.locator("#id_old_password")).to_be_visible()
    assert third.url.endswith("/accounts/password/")
    third.fill("#id_old_password", ines.password)
    third.fill("#id_new_password1", "ines's newer passphrase 9")
    third.fill("#id_new_password2", "ines's newer passphrase 9")
    third.get_by_role("button", name="Change password").click()
    expect(third.locator(".alert")).to_contain_text("Your password was changed.")

    steps = [event["details"] for event in audit(site, "backup_code.used")]
    assert [step.get("step_up", False) for step in steps] == [False, False, True, True]
    [passkey_step_up] = audit(site, "passkey.used")
    assert passkey_step_up["details"]["step_up"] is True
    assert first.csp_violations == [] and third.csp_violations == []
