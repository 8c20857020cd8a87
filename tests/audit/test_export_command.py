import datetime
import io
import json

import pytest
from django.core.management import call_command

from audit import chain
from audit.log import record
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_it_writes_json_lines_oldest_first_and_audits_itself(tmp_path):
    record("login.failure", outcome="failure", username_tried="eve")
    record("logout")
    output = tmp_path / "audit.jsonl"

    call_command("audit_export", output=str(output), stderr=io.StringIO())

    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["login.failure", "logout"]
    assert lines[0]["details"] == {"username_tried": "eve"}
    assert lines[0]["hash"] == AuditEvent.objects.get(sequence=1).hash
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.details == {"format": "jsonl", "filters": {}, "rows": 2, "via": "command"}


def test_it_exports_only_the_days_asked_for(monkeypatch):
    for day in (1, 2, 3):
        moment = datetime.datetime(2025, 3, day, 10, tzinfo=datetime.UTC)
        monkeypatch.setattr(chain, "now", lambda moment=moment: moment)
        record("login.success", target=f"day:{day}")

    out = io.StringIO()
    call_command("audit_export", since="2025-03-02", until="2025-03-03", stdout=out)

    assert [json.loads(line)["target"] for line in out.getvalue().splitlines()] == ["day:2"]


def test_it_continues_after_a_sequence_for_incremental_shipping():
    for i in range(4):
        record("login.success", target=f"user:{i}")

    out = io.StringIO()
    call_command("audit_export", after_sequence=2, format="csv", stdout=out)

    rows = out.getvalue().splitlines()
    assert rows[0].startswith("sequence,time_utc,action")
    assert [row.split(",")[0] for row in rows[1:]] == ["3", "4"]
