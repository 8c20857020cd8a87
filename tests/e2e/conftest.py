"""A real Chromium (Debian's, never a downloaded one) against a real `manage.py serve`."""

import base64
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import expect

from accounts.models import authenticator_code
from tests.support.clusters import ThrowawayRedis
from tests.support.production import wait_until_ready
from tests.support.server import (
    REPO,
    ServedSite,
    free_port,
    manage,
    served_site,
    site_environment,
)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "var" / "e2e"


def spki_pin(cert_path: Path) -> str:
    """The base64 SHA-256 of a certificate's public key, as Chromium's SPKI allow-list wants."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """One served site (embedded profile, real model) for the browser tests; each test
    makes its own accounts. A module that needs a site of its own overrides this."""
    with served_site(tmp_path_factory.mktemp("var"), free_port()) as running:
        yield running


ECHO_SITE_PROMPT = "You are the assistant of Example Corp."
ECHO_ANSWER_TIMEOUT = 20_000  # ms


@contextlib.contextmanager
def echo_site_in(directory: Path, **env: str) -> Iterator[ServedSite]:
    """A site on the production profile (Redis, a separate worker process) whose worker
    answers at once with the system prompt it was given (tests/support/echo_worker.py): for
    tests of the page rather than of the model. ``env``: more settings of the site."""
    redis = ThrowawayRedis(directory)
    redis.start()
    try:
        with served_site(
            directory / "var",
            free_port(),
            REDIS_URL=redis.url,
            EMBEDDED_WORKER="0",
            LLM_SYSTEM_PROMPT=ECHO_SITE_PROMPT,
            **env,
        ) as running:
            with (directory / "worker.log").open("w") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "tests.support.echo_worker", "echo-1"],
                    cwd=REPO,
                    env=running.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_until_ready(running)
                yield running
            finally:
                worker.terminate()
                worker.wait(timeout=20)
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def echo_site(tmp_path_factory):
    """The echo site (echo_site_in) shared by a session's tests."""
    with echo_site_in(tmp_path_factory.mktemp("echo-site")) as running:
        yield running


def ask_echo(page, question):
    """Send a question on the echo site; the answer's body once it is complete."""
    answers = page.locator(".message-assistant")
    before = answers.count()
    page.fill("#composer-input", question)
    # Enabled once the socket is open: Enter before that keeps the message unsent.
    expect(page.locator("#send-button")).to_be_enabled(timeout=30_000)
    page.press("#composer-input", "Enter")
    expect(answers).to_have_count(before + 1, timeout=ECHO_ANSWER_TIMEOUT)
    expect(page.locator(".message-assistant.is-streaming")).to_have_count(
        0, timeout=ECHO_ANSWER_TIMEOUT
    )
    return answers.last.locator(".message-body")


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


@pytest.fixture
def page_for(browser_for):
    """A fresh browser page on a site; it collects Content-Security-Policy violations."""
    contexts = []

    def open_page(site):
        context = browser_for(site).new_context(
            base_url=f"https://localhost:{site.port}", accept_downloads=True
        )
        contexts.append(context)
        page = context.new_page()
        page.csp_violations = []
        page.on(
            "console",
            lambda message: (
                "Content Security Policy" in message.text
                and page.csp_violations.append(message.text)
            ),
        )
        return page

    yield open_page
    for context in contexts:
        context.close()


def create_account(site, username: str, password: str, *flags: str) -> None:
    """A new account on ``site`` (sites are shared by a session's tests: each test names
    its own people)."""
    made = subprocess.run(
        [sys.executable, "manage.py", "createuser", username, "--password-stdin", *flags],
        cwd=REPO,
        env=site_environment(site.var_dir),
        input=password + "\n",
        text=True,
        capture_output=True,
    )
    assert made.returncode == 0, f"createuser {username} failed:\n{made.stderr}"


def password_step(page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def enrol_by_typing_the_key(page) -> tuple[str, list[str]]:
    """On the enrolment page: read the manual key, type the app's code; returns the key and
    the backup codes shown."""
    page.wait_for_selector(".secret-key code")
    key = page.inner_text(".secret-key code").replace(" ", "").strip()
    page.fill("#id_code", authenticator_code(key))
    page.click("button[type=submit]")
    page.wait_for_selector("[data-backup-codes]")
    return key, [c.strip() for c in page.locator("[data-backup-codes] code").all_inner_texts()]


class Account:
    """Someone with a password and, once enrolled, an authenticator app (its key)."""

    def __init__(self, username: str, password: str):
        self.username = username
        self.password = password
        self.key: str | None = None
        self.backup_codes: list[str] = []
        self._last_code_at = 0.0

    def next_code(self) -> str:
        """The app's code, from a time step after the last one used (codes work once)."""
        at = max(time.time(), self._last_code_at + 30)
        self._last_code_at = at
        return authenticator_code(self.key, at)


def sign_in(page, account: Account) -> None:
    """Password, then enrolment (first time) or a code; ends signed in."""
    password_step(page, account.username, account.password)
    page.wait_for_selector("#id_code")
    if page.locator(".secret-key").count():
        account.key, account.backup_codes = enrol_by_typing_the_key(page)
        account._last_code_at = time.time()
        page.click("text=I have saved my codes")
    else:
        page.fill("#id_code", account.next_code())
        page.click("button[type=submit]")
    page.wait_for_selector("header .user-name")


def audit(site, action: str) -> list[dict]:
    """The site's audit events of ``action``, oldest first (outcome and details)."""
    code = (
        "import json; from audit.models import AuditEvent; print(json.dumps([{'outcome': e.outcome,"
        f" 'details': e.details}} for e in AuditEvent.objects.filter(action='{action}')"
        ".order_by('sequence')]))"
    )
    return json.loads(manage("shell", "-c", code, env=site.env).strip().splitlines()[-1])
