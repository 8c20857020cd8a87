"""Signing in to a served site over real HTTPS, the way a browser does, without one."""

import html
import http.cookiejar
import re
import time
import urllib.parse
import urllib.request

from accounts.models import authenticator_code


class SignedInClient:
    """A cookie-keeping HTTPS client that signs in with password and authenticator code."""

    def __init__(self, site):
        self.site = site
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=site.tls_context()),
            urllib.request.HTTPCookieProcessor(self.jar),
        )
        self.base = f"https://localhost:{site.port}"
        self.key: str | None = None

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as response:
            return response.read().decode()

    def post_form(self, path: str, page: str, fields: dict) -> str:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        # The URL is always this site's https:// address.
        request = urllib.request.Request(  # noqa: S310
            self.base + path,
            data=data,
            headers={"Origin": self.base, "Referer": self.base + path},
        )
        with self.opener.open(request, timeout=60) as response:
            return response.read().decode()

    def sign_in(self, username: str, password: str) -> "SignedInClient":
        """Password, then enrolment on the first sign-in (keeping the key) or a code."""
        page = self.post_form(
            "/accounts/login/",
            self.get("/accounts/login/"),
            {"username": username, "password": password},
        )
        if "secret-key" in page:
            self.key = html.unescape(
                re.search(r'class="secret-key"[^>]*><code>([^<]+)</code>', page).group(1)
            ).replace(" ", "")
            page = self.post_form("/accounts/enrol/", page, {"code": authenticator_code(self.key)})
            assert "data-backup-codes" in page, page[:500]
        else:
            page = self.post_form(
                "/accounts/verify/", page, {"code": authenticator_code(self.key, time.time() + 30)}
            )
        return self

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)
