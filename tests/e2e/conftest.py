"""A real Chromium (Debian's, never a downloaded one) against a real `manage.py serve`."""

import base64
import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.server import REPO

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "var" / "e2e"


def spki_pin(cert_path: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium's SPKI allow-list wants."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def playwright_instance():
    """Playwright's sync API keeps an event loop running in this thread while it is open:
    stop it after each module so that later tests can run their own loops."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture
def browser_for(playwright_instance):
    """Open Chromium trusting exactly the given site's certificate key, nothing else."""
    opened = []

    def launch(site):
        browser = playwright_instance.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--ignore-certificate-errors-spki-list={spki_pin(site.var_dir / 'tls/server.crt')}",
            ],
        )
        opened.append(browser)
        return browser

    yield launch
    for browser in opened:
        browser.close()


class Screenshots:
    def __init__(self, name: str):
        self.directory = SCREENSHOTS / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def take(self, page, step: str) -> None:
        self.count += 1
        page.screenshot(path=self.directory / f"{self.count:02d}-{step}.png", full_page=True)


@pytest.fixture
def screenshots(request):
    return Screenshots(request.node.name)
