"""Passkeys in Chromium with its virtual authenticator (the DevTools WebAuthn domain):
register one, sign in with the password and the passkey, a copied passkey with a lower
counter and a ceremony from another origin are refused and audited, and it is removed."""

import contextlib
import re
import socket
import threading

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Account, audit, create_account, password_step, sign_in
from tests.support.webauthn import credentials, virtual_authenticator

pytestmark = [pytest.mark.e2e, pytest.mark.system]


@contextlib.contextmanager
def relay_to(port: int):
    """Another port on this machine that relays every connection to ``port``: the same
    server, seen by the browser as another origin (https://localhost:<other port>)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pump(source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def use_passkey(page, account: Account) -> None:
    password_step(page, account.username, account.password)
    page.get_by_role("button", name="Use a passkey").click()


def test_a_passkey_is_registered_signs_in_refuses_copies_and_other_origins_and_is_removed(
    site, page_for, browser_for, screenshots
):
    pia = Account("pia", "pia's long passphrase 12")
    create_account(site, pia.username, pia.password)
    page = page_for(site)
    cdp, authenticator = virtual_authenticator(page)
    sign_in(page, pia)

    # Register "work laptop" (the sign-in's second factor is fresh: no step-up prompt).
    page.goto("/accounts/passkeys/")
    page.get_by_role("link", name="Add a passkey").click()
    page.fill("#passkey-name", "work laptop")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Register the passkey").click()
    expect(page).to_have_url(re.compile(r"/accounts/passkeys/$"))
    expect(page.locator("[data-passkey]")).to_have_count(1)
    expect(page.locator("[data-passkey]")).to_contain_text("work laptop")
    screenshots.take(page, "registered")
    [registered] = audit(site, "passkey.registered")
    assert registered["details"]["name"] == "work laptop"
    [credential] = credentials(cdp, authenticator)
    assert credential["rpId"] == "localhost"

    # Another browser holding the same passkey: password, then the passkey instead of a code.
    laptop = page_for(site)
    laptop_cdp, laptop_authenticator = virtual_authenticator(laptop, credential)
    use_passkey(laptop, pia)
    expect(laptop.locator("header .user-name")).to_be_visible()
    laptop.goto("/accounts/")
    expect(laptop.locator("h1")).to_have_text("Your account")
    [used] = audit(site, "passkey.used")
    assert used["details"]["sign_count"] >= 1
    [used_credential] = credentials(laptop_cdp, laptop_authenticator)

    # A copy of the passkey whose counter is behind the one last seen: refused and audited.
    clone = page_for(site)
    virtual_authenticator(clone, {**credential, "signCount": 0})
    use_passkey(clone, pia)
    expect(clone.locator("#passkey-verification-status-message")).to_contain_text("copied")
    screenshots.take(clone, "copy-refused")
    clone.goto("/accounts/")
    expect(clone).to_have_url(re.compile(r"/accounts/verify/"))
    [copied] = audit(site, "passkey.failed")
    assert copied["outcome"] == "failure"
    assert copied["details"] == {"ceremony": "authentication", "reason": "counter_regression"}

    # The same server through another origin (a relaying look-alike): the browser signs for
    # that origin, and the server refuses it.
    with relay_to(site.port) as other_port:
        context = browser_for(site).new_context(base_url=f"https://localhost:{other_port}")
        relayed = context.new_page()
        virtual_authenticator(relayed, used_credential)
        use_passkey(relayed, pia)
        expect(relayed.locator("#passkey-verification-status-message")).to_contain_text(
            "not this site's address"
        )
        context.close()
    assert audit(site, "passkey.failed")[-1]["details"]["reason"] == "wrong_origin"
    assert len(audit(site, "passkey.used")) == 1

    # Removed: it no longer appears, and the authenticator app remains.
    page.goto("/accounts/passkeys/")
    page.get_by_role("button", name="Remove work laptop").click()
    expect(page.locator(".alert")).to_contain_text("The passkey was removed.")
    expect(page.locator("[data-passkey]")).to_have_count(0)
    [removed] = audit(site, "passkey.removed")
    assert removed["details"]["name"] == "work laptop"
    assert page.csp_violations == [] and laptop.csp_violations == []
