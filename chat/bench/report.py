"""The bench's table, its ratios to the yardstick and targets, the JSON file and the plot."""

import json
from pathlib import Path

PHASES = (
    ("baseline", "generate (fp32)"),
    ("engine", "engine alone"),
    ("embedded", "e2e embedded"),
    ("production", "e2e production"),
    ("upstream_direct", "upstream direct"),
    ("upstream", "e2e upstream"),
)
COLUMNS = (
    ("N", 3),
    ("TTFT p50", 9),
    ("TTFT p95", 9),
    ("ITL p50", 8),
    ("ITL p95", 8),
    ("tok/s/stream", 12),
    ("agg tok/s", 9),
    ("x yard", 6),
    ("peak MiB", 8),
    ("done", 5),
)


def _cell(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def yardstick(results: dict) -> float | None:
    """Plain float32 generate, one request, tokens per second (this run)."""
    return (results.get("baseline") or {}).get("levels", {}).get("1", {}).get("aggregate_tps")


def rows(results: dict) -> list[tuple[str, list[str]]]:
    base = yardstick(results)
    table = []
    for key, label in PHASES:
        levels = (results.get(key) or {}).get("levels", {})
        # JSON keys are strings ("16" sorts before "2"): order by the number.
        for count, s in sorted(levels.items(), key=lambda item: int(item[0])):
            ratio = s["aggregate_tps"] / base if base and s.get("aggregate_tps") else None
            table.append(
                (
                    label,
                    [
                        count,
                        _cell(s["ttft_p50_ms"]),
                        _cell(s["ttft_p95_ms"]),
                        _cell(s["itl_p50_ms"]),
                        _cell(s["itl_p95_ms"]),
                        _cell(s["stream_tps"]),
                        _cell(s["aggregate_tps"]),
                        _cell(ratio, 2),
                        _cell(s.get("peak_rss_mb")),
                        f"{s['completed']}/{s['streams']}",
                    ],
                )
            )
    return table


def table(results: dict) -> str:
    width = max(len(label) for _, label in PHASES)
    header = "phase".ljust(width) + "  " + "  ".join(n.rjust(w) for n, w in COLUMNS)
    lines = [header, "-" * len(header)]
    for label, cells in rows(results):
        lines.append(
            label.ljust(width)
            + "  "
            + "  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True))
        )
    lines.append("(times in ms; ITL = inter-token latency; x yard = aggregate / yardstick)")
    return "\n".join(lines)


def markdown_table(results: dict) -> str:
    names = ["phase"] + [n for n, _ in COLUMNS]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows(results)]
    return "\n".join(lines)


def _level(results: dict, phase: str, count: int) -> dict:
    return (results.get(phase) or {}).get("levels", {}).get(str(count)) or {}


def targets(results: dict) -> list[dict]:
    """The issue's targets, each with the measured ratio and whether it is met (None: not
    measured in this run)."""
    base = yardstick(results)
    checks = []

    def check(name: str, value, goal: float, at_most: bool = False) -> None:
        met = None if value is None else (value <= goal if at_most else value >= goal)
        checks.append(
            {
                "target": name,
                "ratio": None if value is None else round(value, 2),
                "goal": f"{'<=' if at_most else '>='} {goal}",
                "met": met,
            }
        )

    def ratio(a, b):
        return a / b if a and b else None

    engine_one = _level(results, "engine", 1).get("aggregate_tps")
    check("engine, 1 request / yardstick", ratio(engine_one, base), 2.5)
    for profile in ("embedded", "production"):
        if profile not in results:
            continue
        for count, goal in ((8, 8.0), (16, 12.0)):
            value = ratio(_level(results, profile, count).get("aggregate_tps"), base)
            check(f"{profile}: {count} users aggregate / yardstick", value, goal)
        single = _level(results, profile, 1).get("ttft_p95_ms")
        eight = _level(results, profile, 8).get("ttft_p95_ms")
        check(f"{profile}: p95 TTFT 8 users / 1 user", ratio(eight, single), 3.0, at_most=True)
        web = _level(results, profile, 1).get("stream_tps")
        engine_stream = _level(results, "engine", 1).get("stream_tps")
        check(f"{profile}: 1 user tok/s / engine 1 stream", ratio(web, engine_stream), 0.9)
    if "upstream" in results:
        web = _level(results, "upstream", 1)
        direct = _level(results, "upstream_direct", 1)
        check(
            "upstream: 1 user tok/s / direct client",
            ratio(web.get("stream_tps"), direct.get("stream_tps")),
            0.9,
        )
        added = (
            web["ttft_p50_ms"] - direct["ttft_p50_ms"]
            if web.get("ttft_p50_ms") is not None and direct.get("ttft_p50_ms") is not None
            else None
        )
        check("upstream: TTFT added to the direct client's, ms", added, 30.0, at_most=True)
        eight = _level(results, "upstream", 8)
        check(
            "upstream: 8 users, answers completed / asked",
            ratio(eight.get("completed"), eight.get("streams")),
            1.0,
        )
    return checks


def targets_text(checks: list[dict]) -> str:
    lines = ["Targets (information only; ratios measured in this run):"]
    for c in checks:
        state = {True: "met", False: "NOT met", None: "not measured"}[c["met"]]
        lines.append(f"  {c['target']:<48} {_cell(c['ratio'], 2):>7}  {c['goal']:<7} {state}")
    return "\n".join(lines)


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def plot(results: dict, path: Path) -> None:
    """Aggregate tokens/s and TTFT (p50, p95 dashed) against concurrency, one line per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (throughput, ttft) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in PHASES:
        levels = (results.get(key) or {}).get("levels", {})
        points = sorted((int(n), s) for n, s in levels.items())
        if not points:
            continue
        counts = [n for n, _ in points]
        (line,) = throughput.plot(
            counts, [s["aggregate_tps"] or 0 for _, s in points], marker="o", label=label
        )
        colour = line.get_color()
        ttft.plot(counts, [s["ttft_p50_ms"] or 0 for _, s in points], marker="o", color=colour)
        ttft.plot(
            counts,
            [s["ttft_p95_ms"] or 0 for _, s in points],
            marker="x",
            linestyle="--",
            color=colour,
        )
    base = yardstick(results)
    if base:
        throughput.axhline(base, color="grey", linestyle=":", label="yardstick (1 request)")
    for axis in (throughput, ttft):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent requests")
        axis.grid(True, alpha=0.3)
    throughput.set_ylabel("aggregate tokens/s")
    throughput.set_title("Throughput")
    throughput.legend(fontsize=8)
    ttft.set_ylabel("time to first token (ms); dashed: p95")
    ttft.set_title("Time to first token")
    meta = results.get("meta", {})
    figure.suptitle(
        f"bench_chat {meta.get('started', '')}, {meta.get('tokens', '')} tokens, "
        f"{meta.get('device', '')}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
