"""The bench's upstream figures: the table shows both paths, and the targets compare the web
path with a direct client of the same engine."""

from chat.bench import report


def level(**values):
    base = {
        "streams": 1,
        "completed": 1,
        "ttft_p50_ms": 10.0,
        "ttft_p95_ms": 12.0,
        "itl_p50_ms": 9.0,
        "itl_p95_ms": 11.0,
        "stream_tps": 100.0,
        "aggregate_tps": 100.0,
    }
    return {**base, **values}


RESULTS = {
    "upstream_direct": {"levels": {"1": level(), "8": level(streams=8, completed=8)}},
    "upstream": {
        "levels": {
            "1": level(ttft_p50_ms=25.0, stream_tps=95.0),
            "8": level(streams=8, completed=7),
        }
    },
}


def test_the_table_shows_the_direct_client_beside_the_web_path():
    table = report.table(RESULTS)

    assert "upstream direct" in table
    assert "e2e upstream" in table
    assert "7/8" in table


def test_the_upstream_targets_are_ratios_to_the_direct_client():
    checks = {c["target"]: c for c in report.targets(RESULTS)}

    assert checks["upstream: 1 user tok/s / direct client"]["ratio"] == 0.95
    assert checks["upstream: 1 user tok/s / direct client"]["met"] is True
    assert checks["upstream: TTFT added to the direct client's, ms"]["ratio"] == 15.0
    assert checks["upstream: TTFT added to the direct client's, ms"]["met"] is True
    assert checks["upstream: 8 users, answers completed / asked"]["met"] is False
