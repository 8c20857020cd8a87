"""Timings of streamed answers and their summary (percentiles, tokens per second).

A stream is a start time and the points at which text arrived, each with a cumulative count
of "units": tokens where the producer reports them (baseline, engine), characters where it
does not (the websocket, whose chunks carry text only). Units become tokens by their share
of the answer's real token count (``usage.completion_tokens`` on the web path), so every
phase reports token times measured the same way.
"""

import itertools
import math
import os
from dataclasses import dataclass, field


@dataclass
class Stream:
    start: float
    points: list[tuple[float, int]] = field(default_factory=list)
    tokens: int = 0
    end: float | None = None
    error: str | None = None

    def add(self, at: float, units: int) -> None:
        if not self.points or units > self.points[-1][1]:
            self.points.append((at, units))

    def token_points(self) -> list[tuple[float, int]]:
        """The arrival points with cumulative token counts (estimated from characters)."""
        if not self.points or self.tokens <= 0:
            return []
        units = self.points[-1][1]
        return [(at, round(self.tokens * count / units)) for at, count in self.points]

    @property
    def ok(self) -> bool:
        return self.error is None and self.tokens > 0 and bool(self.points)

    def ttft(self) -> float:
        return self.points[0][0] - self.start

    def inter_token(self) -> list[float]:
        """One gap per token after the first arrival: a chunk of k tokens after a gap g
        counts as k gaps of g/k."""
        gaps: list[float] = []
        points = self.token_points()
        carried = 0.0
        for (before, count_before), (after, count_after) in itertools.pairwise(points):
            carried += after - before
            new = count_after - count_before
            if new > 0:
                gaps += [carried / new] * new
                carried = 0.0
        return gaps

    def finished_at(self) -> float:
        return self.end if self.end is not None else self.points[-1][0]


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def summarise(streams: list[Stream]) -> dict:
    done = [s for s in streams if s.ok]
    ttfts = [s.ttft() for s in done]
    gaps = [gap for s in done for gap in s.inter_token()]
    per_stream = [s.tokens / (s.finished_at() - s.start) for s in done]
    tokens = sum(s.tokens for s in done)
    aggregate = None
    if done:
        elapsed = max(s.finished_at() for s in done) - min(s.start for s in done)
        aggregate = tokens / elapsed if elapsed > 0 else None
    return {
        "streams": len(streams),
        "completed": len(done),
        "errors": sorted({s.error for s in streams if s.error}),
        "tokens": tokens,
        "ttft_p50_ms": _ms(percentile(ttfts, 0.5)),
        "ttft_p95_ms": _ms(percentile(ttfts, 0.95)),
        "itl_p50_ms": _ms(percentile(gaps, 0.5)),
        "itl_p95_ms": _ms(percentile(gaps, 0.95)),
        "stream_tps": round(sum(per_stream) / len(per_stream), 2) if per_stream else None,
        "aggregate_tps": round(aggregate, 2) if aggregate else None,
    }


def summarise_rounds(rounds: list[list[Stream]]) -> dict:
    """A level measured in several rounds: latency percentiles over every stream of every
    round; tokens/s (per stream and aggregate) the median of the rounds' own, so that one
    round disturbed by something else on the machine does not decide the figure."""
    summary = summarise([stream for streams in rounds for stream in streams])
    per_round = [summarise(streams) for streams in rounds]
    for key in ("stream_tps", "aggregate_tps"):
        values = [r[key] for r in per_round if r[key] is not None]
        median = percentile(values, 0.5)
        summary[key] = round(median, 2) if median is not None else None
    summary["rounds"] = len(rounds)
    return summary


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident memory (VmHWM) of a process, in MiB; None where /proc has no answer."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid == "self":
        import resource

        # ru_maxrss is in KiB on Linux.
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return None


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
