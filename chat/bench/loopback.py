"""Reaching a site and its servers on loopback: a free port, whether PostgreSQL and Redis
answer, an environment without another profile's settings, and signing in over HTTPS with
password and authenticator code the way a browser does, without one.

The bench and the load test use these; the project's tests import them from here too. No
Django import at module level: ``python -m tests.support.services`` probes a server before
any settings exist.
"""

import html
import http.cookiejar
import os
import re
import socket
import time
import urllib.parse
import urllib.request

# Variables that select a profile, a key or an address: a site started here sets its own.
PROFILE_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "CHAT_ENCRYPTION_KEYS",
        "AUDIT_HMAC_KEY",
        "TLS_CERT",
        "TLS_KEY",
        "TLS_CHAIN",
        "VAR_DIR",
        "INTERNAL_NETWORKS",
        "TRUSTED_PROXIES",
        "ALLOWED_HOSTS",
        "PORT",
        "BIND",
        "DEBUG",
        "LLM_MODEL",
        "EMBEDDED_WORKER",
    }
)


def environ_without_profile() -> dict[str, str]:
    """The current environment minus anything that would select a profile or a key."""
    return {key: value for key, value in os.environ.items() if key not in PROFILE_VARIABLES}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Servers -----------------------------------------------------------------------------


def postgres_unreachable(url: str) -> str | None:
    """None when the PostgreSQL server at ``url`` answers a query, else why not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at {url}: {exc}"
    return None


def redis_unreachable(url: str) -> str | None:
    """None when the Redis server at ``url`` answers a PING, else why not."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        return f"Redis at {url}: {exc}"
    return None


def services_answer(postgres_url: str, redis_url: str) -> str | None:
    """None when both servers answer, else why not."""
    return postgres_unreachable(postgres_url) or redis_unreachable(redis_url)


# --- Signing in ----------------------------------------------------------------------------


class SignInError(Exception):
    pass


class SignedInClient:
    """A cookie-keeping HTTPS client of ``site`` (anything with ``port`` and
    ``tls_context()``) that signs in with password and authenticator code."""

    def __init__(self, site):
        self.site = site
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=site.tls_context()),
            urllib.request.HTTPCookieProcessor(self.jar),
        )
        self.base = f"https://localhost:{site.port}"
        # The authenticator key shown at enrolment, for codes at later sign-ins.
        self.key: str | None = None

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as response:
            return response.read().decode()

    def post_form(self, path: str, page: str, fields: dict) -> str:
        """POST ``fields`` to ``path`` with the CSRF token of ``page`` (the form's page)."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if token is None:
            raise SignInError(f"No CSRF token on the page before {path}: {page[:300]}")
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        # The URL is always this site's own https://localhost address.
        request = urllib.request.Request(  # noqa: S310
            self.base + path,
            data=data,
            headers={"Origin": self.base, "Referer": self.base + path},
        )
        with self.opener.open(request, timeout=60) as response:
            return response.read().decode()

    def sign_in(self, username: str, password: str) -> "SignedInClient":
        """Password, then enrolment on the first sign-in (keeping the key shown) or a code
        from the kept key on later ones."""
        from accounts.models import authenticator_code

        page = self.post_form(
            "/accounts/login/",
            self.get("/accounts/login/"),
            {"username": username, "password": password},
        )
        key = re.search(r'class="secret-key"[^>]*><code>([^<]+)</code>', page)
        if key is not None:
            self.key = html.unescape(key.group(1)).replace(" ", "")
            page = self.post_form("/accounts/enrol/", page, {"code": authenticator_code(self.key)})
            if "data-backup-codes" not in page:
                raise SignInError(f"{username}: enrolment failed: {page[:300]}")
        elif self.key is not None:
            # The next 30-second window: the code of the current one was used at enrolment.
            code = authenticator_code(self.key, time.time() + 30)
            page = self.post_form("/accounts/verify/", page, {"code": code})
        else:
            raise SignInError(
                f"{username}: neither an enrolment page nor a known authenticator key after "
                f"the password: {page[:300]}"
            )
        return self

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)
