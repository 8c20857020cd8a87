import os

import pytest

from tests.support import personas, services
from tests.support.server import free_port as _free_port


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Unit tests render templates without running collectstatic first.

    The manifest storage used in production needs collected files; system tests exercise it
    through a real `manage.py serve`. Whitenoise serves from the app finders instead.
    """
    settings.STATIC_ROOT = None
    settings.WHITENOISE_USE_FINDERS = True
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _no_embedded_worker_and_a_clean_cache(settings):
    """Tests start the workers they need themselves; heartbeats and throttles of one test
    must not leak into the next through the in-process cache."""
    from django.core.cache import cache

    settings.EMBEDDED_WORKER = False
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _own_data_key_store(settings, tmp_path):
    """Each test has its own key store, as each has its own database: keys of one test's
    users must not be found by the next test's users of the same id."""
    settings.DATA_KEY_DIR = tmp_path / "data-keys"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 with few iterations: the same code path, without a second per login."""
    settings.PASSWORD_HASHERS = [
        "tests.support.hashers.FastPBKDF2PasswordHasher",
        "accounts.hashers.BackupCodeHasher",
    ]


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server on loopback; fails under CI=true if it is not answering."""
    url = os.environ.get("TEST_POSTGRES_URL", services.DEFAULT_POSTGRES_URL)
    services.require(
        "PostgreSQL", url, services.postgres_answers(url), "set TEST_POSTGRES_URL or start it"
    )
    return url


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis server on loopback; fails under CI=true if it is not answering."""
    url = os.environ.get("TEST_REDIS_URL", services.DEFAULT_REDIS_URL)
    services.require("Redis", url, services.redis_answers(url), "set TEST_REDIS_URL or start it")
    return url


# --- Personas (tests mark their own database access) ---------------------------------------


@pytest.fixture
def employee():
    return personas.make_employee("alice")


@pytest.fixture
def other_employee():
    return personas.make_employee("bob")


@pytest.fixture
def password_only_user():
    return personas.make_password_only_user("pat")


@pytest.fixture
def admin_user():
    return personas.make_admin()


@pytest.fixture
def group_admin():
    return personas.make_group_admin()


@pytest.fixture
def compliance_officer():
    return personas.make_compliance_officer()


@pytest.fixture
def employee_client(client, employee):
    personas.login_2fa(client, employee)
    return client


@pytest.fixture
def compliance_client(client, compliance_officer):
    personas.login_2fa(client, compliance_officer)
    return client


@pytest.fixture
def admin_client_secure(client, admin_user):
    personas.login_2fa(client, admin_user)
    return client
