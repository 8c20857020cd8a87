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


def test_rounds_report_the_median_rate_and_every_stream_latency():
    from chat.bench.metrics import Stream, summarise_rounds

    def stream(start, first, end, tokens=10):
        s = Stream(start=start, tokens=tokens, end=end)
        s.add(first, 1)
        s.add(end, 2)
        return s

    # Three rounds of one stream: 10 tokens in 0.1 s, 0.2 s, and 1 s (a disturbed round).
    rounds = [[stream(0, 0.01, 0.1)], [stream(0, 0.02, 0.2)], [stream(0, 0.5, 1.0)]]

    summary = summarise_rounds(rounds)

    assert summary["rounds"] == 3
    assert summary["streams"] == summary["completed"] == 3
    assert summary["stream_tps"] == 50.0  # the median round, not the mean (53.3)
    assert summary["aggregate_tps"] == 50.0
    assert summary["ttft_p50_ms"] == 20.0
