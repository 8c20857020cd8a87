"""Settings as an operator sets them: each case loads project.settings in a fresh process."""

import json
import subprocess
import sys

import pytest

from core.keys import ensure_keys
from tests.support.server import REPO
from tests.support.services import environ_without_profile

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "DATABASES": settings.DATABASES,
    "CHANNEL_LAYERS": settings.CHANNEL_LAYERS,
    "CSRF_TRUSTED_ORIGINS": settings.CSRF_TRUSTED_ORIGINS,
    "CSP": settings.CONTENT_SECURITY_POLICY["DIRECTIVES"],
}, default=str))
"""


def _load_settings(var_dir, **env):
    environ = environ_without_profile()
    environ.update({"DJANGO_SETTINGS_MODULE": "project.settings", "VAR_DIR": str(var_dir)})
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def var_dir(tmp_path):
    ensure_keys(tmp_path)
    return tmp_path


def _loaded(var_dir, **env):
    result = _load_settings(var_dir, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_default_profile_is_sqlite_in_var_with_an_in_memory_channel_layer(var_dir):
    loaded = _loaded(var_dir)

    assert loaded["DEBUG"] is False
    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(var_dir / "db.sqlite3")
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_database_url_selects_postgresql_and_keeps_its_sslmode(var_dir):
    loaded = _loaded(
        var_dir,
        DATABASE_URL="postgresql://chat:pw@db.corp.example:5432/chat"
        "?sslmode=verify-full&sslrootcert=/etc/chat/db-ca.pem",
    )

    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["HOST"] == "db.corp.example"
    assert database["OPTIONS"]["sslmode"] == "verify-full"
    assert database["OPTIONS"]["sslrootcert"] == "/etc/chat/db-ca.pem"


def test_postgresql_connections_are_pooled_per_process_unless_turned_off(var_dir):
    url = "postgresql://chat:pw@db.corp.example:5432/chat"

    pooled = _loaded(var_dir, DATABASE_URL=url)["DATABASES"]["default"]
    unpooled = _loaded(var_dir, DATABASE_URL=url, DATABASE_POOL_SIZE="0")["DATABASES"]["default"]
    larger = _loaded(var_dir, DATABASE_URL=url, DATABASE_POOL_SIZE="40")["DATABASES"]["default"]

    assert pooled["OPTIONS"]["pool"]["max_size"] == 10
    assert pooled["CONN_MAX_AGE"] == 0  # Django's pool needs it; the pool keeps them open
    assert pooled["CONN_HEALTH_CHECKS"] is True  # each connection is checked as handed out
    assert "pool" not in unpooled["OPTIONS"]
    assert larger["OPTIONS"]["pool"]["max_size"] == 40


def test_redis_url_selects_an_encrypted_redis_channel_layer_and_accepts_tls(var_dir):
    loaded = _loaded(var_dir, REDIS_URL="rediss://redis.corp.example:6380/2")

    layer = loaded["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "core.channel_layer.ResilientRedisChannelLayer"
    (host,) = layer["CONFIG"]["hosts"]
    assert host["address"] == "rediss://redis.corp.example:6380/2"
    assert host["socket_timeout"] == 30
    assert host["retry_on_error"]
    assert layer["CONFIG"]["symmetric_encryption_keys"]


def test_csrf_origins_and_the_websocket_sources_follow_allowed_hosts(var_dir):
    loaded = _loaded(var_dir, ALLOWED_HOSTS="chat.corp.example,.team.example", PUBLIC_PORT="443")

    assert loaded["CSRF_TRUSTED_ORIGINS"] == ["https://chat.corp.example", "https://*.team.example"]
    assert loaded["CSP"]["connect-src"] == [
        "'self'",
        "wss://chat.corp.example",
        "wss://*.team.example",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "84x3"}, "PORT='84x3' is not a whole number"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DATABASE_URL": "mysql://db/chat"}, "DATABASE_URL must be a PostgreSQL URL"),
        ({"REDIS_URL": "http://redis"}, "REDIS_URL must start with redis://"),
        ({"INTERNAL_NETWORKS": "10.0.0.0/33"}, "INTERNAL_NETWORKS contains '10.0.0.0/33'"),
        ({"TLS_CERT": "/etc/chat/cert.pem"}, "Set TLS_CERT and TLS_KEY together"),
    ],
)
def test_a_malformed_setting_stops_start_up_with_a_message_naming_it(var_dir, env, message):
    result = _load_settings(var_dir, **env)

    assert result.returncode != 0
    assert message in result.stderr


def test_a_missing_secret_stops_start_up_and_says_how_to_make_one(tmp_path):
    result = _load_settings(tmp_path)

    assert result.returncode != 0
    assert "SECRET_KEY is not set and" in result.stderr
    assert "python -m core.keys" in result.stderr


def test_secrets_from_the_environment_need_no_key_files(tmp_path):
    result = _load_settings(
        tmp_path,
        SECRET_KEY="x" * 60,
        CHAT_ENCRYPTION_KEYS="oB1Rmv6HaWkT2vYzq3b0gTn6E2A1J8cCl8sGk2hQeL0=",
        AUDIT_HMAC_KEY="ab" * 32,
    )

    assert result.returncode == 0, result.stderr
