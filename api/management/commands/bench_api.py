"""`manage.py bench_api`: API throughput next to the websocket's at 1 and 8 clients."""

import argparse
import json
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from api import bench
from chat.bench.site import BenchError, Site


def _levels(value: str) -> list[int]:
    try:
        levels = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: use numbers like 1,8") from None
    if not levels or levels[0] < 1 or levels[-1] > 64:
        raise argparse.ArgumentTypeError("concurrency levels must be between 1 and 64")
    return levels


class Command(BaseCommand):
    help = (
        "Serve a throwaway site (embedded profile) and ask the same greedy questions over "
        "chat sockets and over /v1/chat/completions (streamed, openai client) at each "
        "concurrency; prints tokens/s of both and their ratio, and writes JSON with --output."
    )

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=_levels, default=[1, 8])
        parser.add_argument("--tokens", type=int, default=64, help="new tokens per answer")
        parser.add_argument("--output", type=Path, default=None, help="a JSON file to write")

    def handle(self, *args, concurrency, tokens, output, **options):
        model_dir = Path(settings.LLM_MODEL)
        with tempfile.TemporaryDirectory(prefix="bench-api-") as run_dir:
            site = Site(Path(run_dir) / "site", model_dir, {})
            users = [f"bench{index:02d}" for index in range(max(concurrency))]
            self.stdout.write(f"Preparing a site with {len(users)} users in {run_dir}")
            try:
                site.prepare(users)
                site.start(separate_worker=False)
                results = bench.run(
                    site,
                    levels=concurrency,
                    tokens=tokens,
                    model=model_dir.name,
                    say=self.stdout.write,
                )
            except BenchError as error:
                raise CommandError(str(error)) from None
            finally:
                site.stop()
        self.stdout.write("")
        self.stdout.write("clients  websocket tok/s  API tok/s  API/websocket  API TTFT p50 ms")
        for level, pair in results.items():
            ws, api = pair["websocket"]["aggregate_tps"], pair["api"]["aggregate_tps"]
            ratio = f"{api / ws:.2f}" if ws and api else "-"
            self.stdout.write(
                f"{level:>7}  {ws!s:>15}  {api!s:>9}  {ratio:>13}  {pair['api']['ttft_p50_ms']!s:>15}"
            )
        if output:
            output.write_text(json.dumps({"tokens": tokens, "levels": results}, indent=2))
