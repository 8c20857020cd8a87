"""A session that changed its password is still ended by an admin's reset of two-step
verification: over real HTTPS against a real `manage.py serve`."""

import pytest

from tests.support.browserless import SignedInClient
from tests.support.server import free_port, manage, served_site, site_environment

pytestmark = pytest.mark.system

PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "a brand new passphrase 77"

RESET = """
from django.contrib.auth import get_user_model
from accounts.services import reset_two_factor
User = get_user_model()
reset_two_factor(
    actor=User.objects.get(username="adam"),
    user=User.objects.get(username="erin"),
    reason="Lost phone",
)
from audit.models import AuditEvent
print(AuditEvent.objects.filter(action="device.reset_by_admin").last().details["sessions_ended"])
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("var")
    # No chat answers are needed: the page itself is what the session must not reach.
    with served_site(var_dir, free_port(), EMBEDDED_WORKER="0") as running:
        env = site_environment(var_dir, EMBEDDED_WORKER="0")
        manage("createuser", "erin", "--password-stdin", env=env, stdin=PASSWORD)
        manage("createuser", "adam", "--admin", "--password-stdin", env=env, stdin=PASSWORD)
        running.env = env
        yield running


def test_a_reset_after_a_password_change_ends_the_old_session(site):
    erin = SignedInClient(site).sign_in("erin", PASSWORD)
    assert 'name="password"' not in erin.get("/")
    page = erin.get("/accounts/password/")
    changed = erin.post_form(
        "/accounts/password/",
        page,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert "Your password was changed" in changed

    ended = manage("shell", "--no-imports", "-c", RESET, env=site.env).splitlines()[-1]

    assert int(ended) >= 1
    chat = erin.get("/")
    assert 'name="password"' in chat and "Sign in" in chat
    enrol = erin.get("/accounts/enrol/")
    assert 'name="password"' in enrol and "secret-key" not in enrol
