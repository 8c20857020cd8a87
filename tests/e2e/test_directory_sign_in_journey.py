"""An employee signs in with their company directory account in Chromium: directory password,
then the authenticator set-up, then the chat; someone outside the chat's groups, and
everyone while the directory is down, reads why they cannot."""

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, enrol_by_typing_the_key, password_step
from tests.support.server import free_port, served_site
from tests.support.slapd import PEOPLE_PASSWORDS, ThrowawaySlapd

pytestmark = [pytest.mark.e2e, pytest.mark.system]


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    server = ThrowawaySlapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, slapd):
    with served_site(tmp_path_factory.mktemp("var"), free_port(), **slapd.env()) as running:
        yield running


def test_a_directory_employee_sets_up_the_second_factor_and_reaches_the_chat(
    site, page_for, screenshots
):
    dora = Account("dora", PEOPLE_PASSWORDS["dora"])
    page = page_for(site)

    password_step(page, dora.username, dora.password)
    page.wait_for_selector(".qr svg")
    screenshots.take(page, "enrol-after-directory-password")
    dora.key, dora.backup_codes = enrol_by_typing_the_key(page)
    page.click("text=I have saved my codes")

    expect(page.locator("header .user-name")).to_have_text("dora")
    screenshots.take(page, "chat")
    assert page.csp_violations == []


def test_someone_outside_the_chats_groups_reads_why(site, page_for):
    page = page_for(site)

    password_step(page, "gina", PEOPLE_PASSWORDS["gina"])

    expect(page.locator(".alert.error")).to_contain_text("not in a group that may use this chat")


def test_while_the_directory_is_down_the_sign_in_page_says_so(site, slapd, page_for):
    page = page_for(site)
    slapd.stop()
    try:
        password_step(page, "eve", PEOPLE_PASSWORDS["eve"])
        expect(page.locator(".alert.error")).to_contain_text(
            "The company directory cannot be reached just now"
        )
    finally:
        slapd.start()
