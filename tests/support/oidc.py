"""A throwaway OpenID Connect provider of the tests' own: tests/oidc_provider (a small
django-oauth-toolkit project) served by daphne over TLS on a free loopback port, with a
test CA, an RSA signing key and the people given to it.

``sign_in_at_provider()`` plays the browser's part at the provider: it signs in there and
follows the authorisation request, returning where the provider sends the browser back.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.certificates import write_test_ca
from tests.support.server import REPO, free_port, stop_process

CLIENT_ID = "private-chat"
CLIENT_SECRET = "the chat's client secret at the test provider"
# Where Django's test client says it is (its host is "testserver").
REDIRECT_URI = "https://testserver/accounts/oidc/callback/"
START_TIMEOUT_SECONDS = 60


class ThrowawayProvider:
    def __init__(self, directory: Path, people: dict[str, dict]):
        self.directory = directory
        self.people = people
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.ca_file, self.cert_file, self.key_file = write_test_ca(directory, ["127.0.0.1"])
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (directory / "signing.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (directory / "claims.json").write_text(json.dumps(people))
        self.environ = {
            "PATH": "/usr/bin:/bin",
            "PROVIDER_STATE_DIR": str(directory),
            "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
            "PYTHONPATH": str(REPO),
        }
        subprocess.run(
            [sys.executable, "-m", "tests.oidc_provider.setup", CLIENT_SECRET, REDIRECT_URI],
            cwd=REPO,
            env=self.environ,
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}/o"

    def env(self, **overrides: str) -> dict[str, str]:
        """The site's OIDC_* variables for this provider."""
        return {
            "OIDC_OP_ISSUER": self.issuer,
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_CA_FILE": str(self.ca_file),
            "OIDC_EMPLOYEES_ROLE": "chat-users",
            "OIDC_COMPLIANCE_ROLE": "chat-compliance",
            "OIDC_ADMINS_ROLE": "chat-admins",
            "OIDC_PROVIDER_NAME": "Corp sign-in",
            **overrides,
        }

    def answers(self) -> bool:
        try:
            response = requests.get(
                f"{self.issuer}/.well-known/openid-configuration",
                verify=str(self.ca_file),
                timeout=2,
            )
        except requests.RequestException:
            return False
        return response.status_code == 200

    def start(self) -> None:
        log = self.directory / "provider.log"
        endpoint = (
            f"ssl:{self.port}:interface=127.0.0.1:privateKey={self.key_file}"
            f":certKey={self.cert_file}"
        )
        with log.open("a") as handle:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-e",
                    endpoint,
                    "tests.oidc_provider.asgi:application",
                ],
                cwd=REPO,
                env=self.environ,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"The test OpenID Connect provider did not start:\n{log.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)

    def sign_in_at_provider(self, username: str, authorize_url: str) -> str:
        """Sign ``username`` in at the provider and follow ``authorize_url``; returns the
        URL the provider redirects the browser to (the site's callback, with code and state)."""
        browser = requests.Session()
        # Per request: a Session's own verify loses to REQUESTS_CA_BUNDLE in the environment.
        ca = str(self.ca_file)
        signed_in = browser.post(
            f"https://127.0.0.1:{self.port}/login/",
            data={"username": username, "password": self.people[username]["password"]},
            allow_redirects=False,
            timeout=10,
            verify=ca,
        )
        assert signed_in.status_code == 302, signed_in.text
        answer = browser.get(authorize_url, allow_redirects=False, timeout=10, verify=ca)
        assert answer.status_code == 302, answer.text[:2000]
        return answer.headers["Location"]
