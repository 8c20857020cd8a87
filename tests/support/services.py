"""Reaching the PostgreSQL and Redis servers that tests of the production profile need."""

import os

import psycopg
import pytest
import redis

from core.env import env_bool

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def running_in_ci() -> bool:
    return env_bool("CI", False)


def postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError:
        return False
    return True


def require(name: str, url: str, answers: bool, hint: str) -> None:
    """Skip when a service is missing on a developer machine; fail under CI=true."""
    if answers:
        return
    message = f"{name} at {url} is not answering ({hint})."
    if running_in_ci():
        pytest.fail(f"{message} CI=true requires it.", pytrace=False)
    pytest.skip(message)


def throwaway_database(server_url: str):
    """A new, empty PostgreSQL database on the server at ``server_url``, dropped afterwards
    (the bench's helper, under a name of the tests' own)."""
    from chat.bench.site import throwaway_database as create

    return create(server_url, prefix="chat_test")


def environ_without_profile() -> dict[str, str]:
    """The current environment minus anything that would select a profile or a key."""
    names = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CHAT_ENCRYPTION_KEYS", "AUDIT_HMAC_KEY"}
    names |= {"TLS_CERT", "TLS_KEY", "TLS_CHAIN", "VAR_DIR", "INTERNAL_NETWORKS"}
    names |= {"TRUSTED_PROXIES", "ALLOWED_HOSTS", "PORT", "BIND", "DEBUG", "LLM_MODEL"}
    return {key: value for key, value in os.environ.items() if key not in names}


if __name__ == "__main__":
    # `python -m tests.support.services postgres URL`: exit 0 when the server answers.
    import sys

    kind, url = sys.argv[1], sys.argv[2]
    answers = postgres_answers(url) if kind == "postgres" else redis_answers(url)
    sys.exit(0 if answers else 1)
