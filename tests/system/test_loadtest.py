"""`manage.py loadtest`, short: a handful of verified users on the production profile."""

import json
import subprocess
import sys

import pytest

from chat.bench.load import Exchange, UserRun, _stored_check
from chat.bench.metrics import Stream
from tests.support.server import REPO
from tests.support.services import environ_without_profile

pytestmark = pytest.mark.system


def test_every_request_ends_and_every_answer_is_stored_as_streamed(
    tmp_path, postgres_server_url, redis_server_url
):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "loadtest",
            "--users=5",
            "--messages=2",
            "--tokens=12",
            "--pause=1",
            "--start-within=1",
            "--time-limit=300",
            f"--output={tmp_path}",
            f"--postgres-url={postgres_server_url}",
            f"--redis-url={redis_server_url}",
        ],
        cwd=REPO,
        env=environ_without_profile(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["requests"] == report["expected_requests"] == 10
    assert report["done"] == 10
    assert report["answered"] == 10, report["errors_by_code"]
    assert report["stored_complete"] == 10
    assert report["storage_problems"] == []
    assert report["ttft_p50_ms"] > 0
    assert "time to first token p50 / p95 / max" in result.stdout
    # The throwaway site is removed after a clean run.
    assert not list(tmp_path.glob("run-*"))


class StoredSite:
    """Answers GET /chat/api/conversations/<id> with what the database holds."""

    def __init__(self, messages):
        self.messages = messages

    def get(self, path, cookie):
        return json.dumps({"messages": self.messages})


def answered(message_id, text):
    exchange = Exchange(user="ann", stream=Stream(start=0.0), text=text, message_id=message_id)
    exchange.outcome = "stop"
    return exchange


def test_the_check_reports_an_answer_stored_shorter_than_it_streamed():
    run = UserRun("ann", "cookie", [answered("m1", "Paris is the capital.")], "c1")
    site = StoredSite([{"id": "m1", "status": "complete", "content": "Paris"}])

    assert _stored_check(site, [run]) == ["ann: answer m1 stored with 5 characters, 21 streamed"]


def test_the_check_reports_a_missing_or_unfinished_answer():
    run = UserRun("ann", "cookie", [answered("m1", "a"), answered("m2", "b")], "c1")
    site = StoredSite([{"id": "m2", "status": "error", "content": "b"}])

    assert _stored_check(site, [run]) == [
        "ann: answer m1 is not stored",
        "ann: answer m2 stored as error",
    ]
