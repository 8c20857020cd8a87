"""A new API token confirmed with a passkey in Chromium (its virtual authenticator): the token
is made and shown once, audited as confirmed with the passkey, and the signed answer the
browser sent cannot make a second token."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, audit, create_account, sign_in
from tests.support.webauthn import virtual_authenticator

pytestmark = [pytest.mark.e2e, pytest.mark.system]


def register_passkey(page, name: str) -> None:
    page.goto("/accounts/passkeys/add/")
    page.fill("#passkey-name", name)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Register the passkey").click()
    expect(page).to_have_url(re.compile(r"/accounts/passkeys/$"))


def test_a_token_is_made_with_a_passkey_once(site, page_for, screenshots):
    tove = Account("tove", "tove's long passphrase 21")
    create_account(site, tove.username, tove.password)
    page = page_for(site)
    virtual_authenticator(page)
    sign_in(page, tove)
    register_passkey(page, "work laptop")
    posted = []
    page.on(
        "request",
        lambda request: (
            request.method == "POST" and request.url.endswith("/tokens/") and posted.append(request)
        ),
    )

    page.goto("/tokens/")
    page.fill("#id_name", "notebook")
    screenshots.take(page, "new-token-form")
    page.get_by_role("button", name="Make the token with a passkey").click()

    token = page.locator("[data-api-token]")
    expect(token).to_have_text(re.compile(r"^llm-\S+$"))
    screenshots.take(page, "token-made-with-a-passkey")
    # (The site is shared with other tests: only tove's events count here.)
    [created] = [e for e in audit(site, "token.created") if e["details"]["owner"] == "tove"]
    assert created["details"]["confirmed_with"] == "passkey"
    assert created["details"]["name"] == "notebook"
    confirmations = [e for e in audit(site, "passkey.used") if e["details"].get("purpose")]
    assert [e["details"]["purpose"] for e in confirmations] == ["api_token"]
    assert page.csp_violations == []

    # The same signed answer, sent again with the form, makes nothing: its challenge is spent.
    [first] = posted
    page.goto("/tokens/")
    expect(page.locator("tr[data-token]")).to_have_count(1)
    fields = {**first.post_data_json} if first.post_data_json else {}
    fields["name"] = "second notebook"
    fields["csrfmiddlewaretoken"] = page.locator(
        "input[name=csrfmiddlewaretoken]"
    ).first.input_value()
    replayed = page.evaluate(
        """fields => fetch("/tokens/", {method: "POST", body: new URLSearchParams(fields)})
            .then(response => response.status)""",
        fields,
    )

    assert replayed == 400
    assert "no_challenge" in [e["details"]["reason"] for e in audit(site, "passkey.failed")]
    page.goto("/tokens/")
    expect(page.locator("tr[data-token]")).to_have_count(1)
