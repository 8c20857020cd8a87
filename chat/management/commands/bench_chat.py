"""`manage.py bench_chat`: baseline generate, the engine alone, and end to end in both
profiles, in one run; prints a table, writes JSON and a PNG under --output (var/bench/).
See docs/performance.md."""

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.bench import report
from chat.bench.metrics import cpu_count, peak_rss_mb

QUICK_TOKENS = 8
PHASE_TIMEOUT = 1800


def _levels(value: str) -> list[int]:
    try:
        levels = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: use numbers like 1,2,4,8,16") from None
    if not levels or levels[0] < 1 or levels[-1] > 64:
        raise argparse.ArgumentTypeError("concurrency levels must be between 1 and 64")
    return levels


class Command(BaseCommand):
    help = (
        "Measure time to first token, inter-token latency and tokens/s: plain transformers "
        "generate (the yardstick), the engine alone, and end to end over TLS websockets in the "
        "embedded and production profiles. Writes JSON and a PNG under --output."
    )

    def add_arguments(self, parser):
        parser.add_argument("--concurrency", type=_levels, default=[1, 2, 4, 8, 16])
        parser.add_argument("--tokens", type=int, default=128, help="new tokens per answer")
        parser.add_argument(
            "--quick",
            action="store_true",
            help=f"smoke run: 1 user, {QUICK_TOKENS} tokens, engine + embedded only",
        )
        parser.add_argument("--skip-production", action="store_true")
        parser.add_argument("--skip-e2e", action="store_true", help="baseline and engine only")
        parser.add_argument("--output", type=Path, default=None, help="default: VAR_DIR/bench")
        parser.add_argument(
            "--postgres-url",
            default="postgresql://postgres@127.0.0.1:5432/test",
            help="server on which a throwaway bench_<hex> database is created and dropped",
        )
        parser.add_argument(
            "--redis-url",
            default="redis://127.0.0.1:6379/13",
            help="Redis database for the production profile's channel layer and cache",
        )
        parser.add_argument("--keep", action="store_true", help="keep the sites' state dirs")
        parser.add_argument(
            "--upstream",
            metavar="URL",
            help="measure the upstream path instead: clients straight to this OpenAI-compatible "
            "server, then the web path through an upstream worker in front of it (production "
            "profile)",
        )
        parser.add_argument("--upstream-model", default="", help="the model's name there")
        parser.add_argument(
            "--upstream-context", type=int, default=0, help="its context, where not reported"
        )
        parser.add_argument(
            "--rounds",
            type=int,
            default=15,
            help="with --upstream: rounds per level, direct and web path in turn; tokens/s "
            "are the rounds' median (one user's level is one answer a round: fewer rounds "
            "than this move the ratio by several hundredths from run to run)",
        )
        # Internal: the in-process phases run in a child process each (own peak memory).
        parser.add_argument("--phase", choices=["baseline", "engine"], help=argparse.SUPPRESS)
        parser.add_argument("--phase-output", type=Path, help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        if options["phase"]:
            return self._child(options)
        if not 1 <= options["tokens"] <= settings.LLM_MAX_NEW_TOKENS:
            raise CommandError(f"--tokens must be between 1 and {settings.LLM_MAX_NEW_TOKENS}.")
        # Ctrl-C and SIGTERM both unwind through the cleanup of every phase.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        quick = options["quick"]
        levels = [1] if quick else options["concurrency"]
        tokens = QUICK_TOKENS if quick else options["tokens"]
        output = (options["output"] or settings.VAR_DIR / "bench").resolve()
        output.mkdir(parents=True, exist_ok=True)
        started = datetime.now(UTC)
        stamp = started.strftime("%Y%m%d-%H%M%S")
        run_dir = output / f"run-{stamp}"
        run_dir.mkdir()
        results = {
            "meta": {
                "started": started.isoformat(timespec="seconds"),
                "tokens": tokens,
                "concurrency": levels,
                "quick": quick,
                "model": Path(settings.LLM_MODEL).name,
                "cpus": cpu_count(),
                "commit": _commit(),
                "device": _device(),
                "prompts": "fixed (chat.bench.local.PROMPTS); greedy",
            },
            "notes": [],
        }
        t0 = time.monotonic()
        failed = False
        if options["upstream"]:
            results["meta"]["model"] = options["upstream_model"]
            results["meta"]["upstream"] = options["upstream"]
        try:
            if options["upstream"]:
                self._upstream(results, options, levels, tokens, run_dir)
            elif not quick:
                self._say("Baseline: transformers generate, float32 (the yardstick)")
                results["baseline"] = self._phase("baseline", levels, tokens, run_dir)
            if not options["upstream"]:
                self._say("Engine alone: scheduler.step() with N requests submitted together")
                results["engine"] = self._phase("engine", levels, tokens, run_dir)
            if not (options["skip_e2e"] or options["upstream"]):
                self._e2e(results, options, levels, tokens, run_dir)
        except (KeyboardInterrupt, SystemExit):
            failed = True
            results["notes"].append("interrupted; partial results")
            self.stderr.write("Interrupted: processes stopped, writing partial results.")
        except Exception as exc:
            failed = True
            results["notes"].append(f"failed: {exc}"[:2000])
            self.stderr.write(f"Bench failed: {exc}")
        results["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
        results["targets"] = report.targets(results)
        json_path = output / f"bench-{stamp}.json"
        png_path = output / f"bench-{stamp}.png"
        report.write_json(results, json_path)
        report.plot(results, png_path)
        shutil.copyfile(json_path, output / "latest.json")
        shutil.copyfile(png_path, output / "latest.png")
        self.stdout.write("")
        self.stdout.write(report.table(results))
        self.stdout.write("")
        self.stdout.write(report.targets_text(results["targets"]))
        for note in results["notes"]:
            self.stdout.write(f"Note: {note}")
        self.stdout.write(f"Wrote {json_path} and {png_path}")
        if failed or options["keep"]:
            self.stdout.write(f"Sites' state and logs kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        if failed:
            raise CommandError("The bench did not complete; see the notes above.")

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _e2e(self, results, options, levels, tokens, run_dir) -> None:
        from chat.bench.site import run_profile, services_answer

        profiles = ["embedded"]
        if not (options["quick"] or options["skip_production"]):
            missing = services_answer(options["postgres_url"], options["redis_url"])
            if missing:
                results["notes"].append(f"production profile skipped: {missing}")
            else:
                profiles.append("production")
        for profile in profiles:
            self._say(f"End to end, {profile} profile: N users, one TLS websocket each")
            results[profile] = {"levels": {}}
            run_profile(
                profile,
                run_dir=run_dir,
                model_dir=Path(settings.LLM_MODEL).resolve(),
                levels=levels,
                tokens=tokens,
                postgres_url=options["postgres_url"],
                redis_url=options["redis_url"],
                say=self._say,
                results=results[profile],
            )

    def _upstream(self, results, options, levels, tokens, run_dir) -> None:
        from chat.bench.site import open_site, services_answer
        from chat.bench.upstream import compare

        if not options["upstream_model"]:
            raise CommandError("--upstream needs --upstream-model, the model's name there.")
        missing = services_answer(options["postgres_url"], options["redis_url"])
        if missing:
            raise CommandError(f"The upstream path runs in the production profile: {missing}")
        worker_args = [
            "--upstream",
            options["upstream"],
            "--upstream-model",
            options["upstream_model"],
        ]
        if options["upstream_context"]:
            worker_args += ["--upstream-context", str(options["upstream_context"])]
        rounds = options["rounds"]
        results["meta"]["rounds"] = rounds
        self._say(
            f"Upstream {options['upstream']}: N clients straight to it, then N users through "
            f"an upstream worker (one TLS websocket each), {rounds} rounds in turn"
        )
        with open_site(
            "upstream",
            run_dir=run_dir,
            model_dir=Path(settings.LLM_MODEL).resolve(),
            users=max(levels),
            postgres_url=options["postgres_url"],
            redis_url=options["redis_url"],
            say=self._say,
            worker_args=tuple(worker_args),
        ) as (site, cookies):
            results["upstream_direct"], results["upstream"] = compare(
                options["upstream"],
                options["upstream_model"],
                settings.LLM_SYSTEM_PROMPT,
                lambda count: asyncio.run(site.ask_together(cookies[:count], tokens)),
                levels,
                tokens,
                rounds,
                say=self._say,
            )
            for summary in results["upstream"]["levels"].values():
                summary["peak_rss_mb"] = peak_rss_mb(site.worker_pid)

    def _phase(self, name: str, levels: list[int], tokens: int, run_dir: Path) -> dict:
        target = run_dir / f"{name}.json"
        # This same command in a child process: its peak memory is the phase's own.
        result = subprocess.run(  # noqa: S603
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "bench_chat",
                "--phase",
                name,
                "--phase-output",
                str(target),
                "--concurrency",
                ",".join(map(str, levels)),
                "--tokens",
                str(tokens),
            ],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=PHASE_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise CommandError(f"phase {name} exited {result.returncode}:\n{result.stderr[-3000:]}")
        data = json.loads(target.read_text())
        for count, summary in data["levels"].items():
            self._say(f"  {name}: {count} concurrent, {summary['aggregate_tps']} tok/s aggregate")
        return data

    def _child(self, options) -> None:
        from chat.bench import local

        run = local.run_baseline if options["phase"] == "baseline" else local.run_engine
        data = run(options["concurrency"], options["tokens"])
        options["phase_output"].write_text(json.dumps(data))


def _commit() -> str:
    git = shutil.which("git")
    if not git:
        return "unknown"
    # A fixed git command in the project's own directory.
    result = subprocess.run(  # noqa: S603
        [git, "describe", "--always", "--dirty"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def _device() -> str:
    import torch

    if torch.cuda.is_available() and settings.LLM_DEVICE in ("", "cuda"):
        return f"CUDA {torch.cuda.get_device_name(0)}"
    return f"CPU ({cpu_count()} cores, torch {torch.__version__})"
