"""`manage.py bench_chat --quick` keeps working: engine alone and the embedded profile end to
end (1 user, a few tokens). It checks what the bench writes, never how fast anything was."""

import json
import subprocess
import sys

import pytest

from tests.support.server import PREPARED_MODEL, REPO
from tests.support.services import environ_without_profile

pytestmark = pytest.mark.system


def test_quick_bench_prints_a_table_and_writes_json_and_a_plot(tmp_path, prepared_model_dir):
    env = environ_without_profile()
    env.update({"LLM_MODEL": str(PREPARED_MODEL), "PYTHONUNBUFFERED": "1"})

    result = subprocess.run(
        [sys.executable, "manage.py", "bench_chat", "--quick", "--output", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (json_file,) = tmp_path.glob("bench-*.json")
    (png_file,) = tmp_path.glob("bench-*.png")
    assert png_file.read_bytes().startswith(b"\x89PNG")
    data = json.loads(json_file.read_text())
    assert data["meta"]["quick"] is True
    for phase in ("engine", "embedded"):
        level = data[phase]["levels"]["1"]
        assert level["completed"] == 1, data[phase]
        assert level["tokens"] > 0
        assert level["ttft_p50_ms"] is not None
    rows = [line for line in result.stdout.splitlines() if line.startswith(("engine", "e2e"))]
    assert len(rows) == 2, result.stdout
    assert "Targets" in result.stdout
    # The sites' state directories are removed after a successful run.
    assert not list(tmp_path.glob("run-*"))
