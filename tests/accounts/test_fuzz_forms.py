"""Random form posts to the sign-in pages: never a server error, never a signed-in session."""

import logging

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.personas import PASSWORD, enrol_totp
from tests.support.server import REPO

pytestmark = pytest.mark.django_db

PAGES = ["/accounts/login/", "/accounts/verify/", "/accounts/enrol/"]
field_values = st.text(max_size=200) | st.sampled_from(
    ["alice", PASSWORD, "000000", "//evil.example"]
)
forms = st.dictionaries(
    st.sampled_from(["username", "password", "code", "next", "csrfmiddlewaretoken", "x"])
    | st.text(max_size=20),
    field_values,
    max_size=5,
)
TRIED = {"posts": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_posts_tried():
    yield
    report = REPO / "var" / "fuzz" / "sign-in-forms.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(f"{TRIED['posts']} random posts to login, verify and enrol\n")
    print(f"\nfuzzed sign-in posts: {TRIED['posts']}")


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(page=st.sampled_from(PAGES), data=forms, half_signed_in=st.booleans())
def test_random_posts_never_break_or_get_in(employee, caplog, page, data, half_signed_in):
    if not hasattr(employee, "_device"):
        employee._device = enrol_totp(employee)
    client = Client()
    if half_signed_in:
        client.post(
            "/accounts/login/",
            {"username": "alice", "password": PASSWORD},
            REMOTE_ADDR="10.9.0.1",
            secure=True,
        )
    with caplog.at_level(logging.ERROR):
        response = client.post(page, data, REMOTE_ADDR="10.9.0.1", secure=True)
    TRIED["posts"] += 1

    assert response.status_code in (200, 302, 400, 403, 429), response.status_code
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert client.get("/accounts/", REMOTE_ADDR="10.9.0.1", secure=True).status_code == 302
