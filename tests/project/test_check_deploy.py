import subprocess
import sys

from core.keys import ensure_keys
from tests.support.server import REPO
from tests.support.services import environ_without_profile


def test_check_deploy_reports_nothing_in_the_default_profile(tmp_path):
    ensure_keys(tmp_path)
    env = {**environ_without_profile(), "VAR_DIR": str(tmp_path)}

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
