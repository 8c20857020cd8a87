"""Reaching the PostgreSQL and Redis servers that tests of the production profile need, and
the tools some tests run. The probes are the bench's own (chat/bench/loopback.py)."""

import shutil

import pytest

from chat.bench.loopback import environ_without_profile as environ_without_profile
from chat.bench.loopback import postgres_unreachable, redis_unreachable
from core.env import env_bool

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def running_in_ci() -> bool:
    return env_bool("CI", False)


def postgres_answers(url: str) -> bool:
    return postgres_unreachable(url) is None


def redis_answers(url: str) -> bool:
    return redis_unreachable(url) is None


def require(name: str, url: str, answers: bool, hint: str) -> None:
    """Skip when a service is missing on a developer machine; fail under CI=true."""
    if answers:
        return
    message = f"{name} at {url} is not answering ({hint})."
    if running_in_ci():
        pytest.fail(f"{message} CI=true requires it.", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, hint: str) -> str:
    """The path of the program ``name``; skip when it is missing on a developer machine, fail
    under CI=true."""
    found = shutil.which(name)
    if found is not None:
        return found
    message = f"{name} is not installed ({hint})."
    if running_in_ci():
        pytest.fail(f"{message} CI=true requires it.", pytrace=False)
    pytest.skip(message)


def throwaway_database(server_url: str):
    """A new, empty PostgreSQL database on the server at ``server_url``, dropped afterwards
    (the bench's helper, under a name of the tests' own)."""
    from chat.bench.site import throwaway_database as create

    return create(server_url, prefix="chat_test")


if __name__ == "__main__":
    # `python -m tests.support.services postgres URL`: exit 0 when the server answers.
    import sys

    kind, url = sys.argv[1], sys.argv[2]
    answers = postgres_answers(url) if kind == "postgres" else redis_answers(url)
    sys.exit(0 if answers else 1)
