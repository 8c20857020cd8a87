"""`manage.py loadtest`: N verified users chatting at once on the production profile, on
loopback. See chat/bench/load.py and docs/operations.md."""

import json
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.bench.load import run_load
from chat.bench.site import services_answer

# Bounds, so that a typo cannot start a thousand users or run all night.
MAX_USERS = 200
MAX_MESSAGES = 20
MAX_SECONDS = 3600


def _bounded(low: int, high: int, kind=int):
    def parse(value: str):
        number = kind(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    parse.__name__ = kind.__name__
    return parse


class Command(BaseCommand):
    help = (
        "Load test on loopback: N users signed in with password and authenticator code chat "
        "at once over TLS websockets with the production profile (daphne, a separate "
        "inference worker, Redis, a throwaway PostgreSQL database). Checks that every request "
        "ends and every finished answer is stored complete; prints and writes the figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=_bounded(1, MAX_USERS), default=50)
        parser.add_argument(
            "--messages", type=_bounded(1, MAX_MESSAGES), default=3, help="per user"
        )
        parser.add_argument(
            "--tokens", type=_bounded(1, 512), default=48, help="most new tokens per answer"
        )
        parser.add_argument(
            "--pause", type=float, default=5.0, help="most seconds between a user's messages"
        )
        parser.add_argument(
            "--start-within", type=float, default=10.0, help="users start within these seconds"
        )
        parser.add_argument(
            "--time-limit",
            type=_bounded(10, MAX_SECONDS),
            default=900,
            help="seconds for the whole conversation phase",
        )
        parser.add_argument("--output", type=Path, default=None, help="default: VAR_DIR/load")
        parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
        parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
        parser.add_argument("--keep", action="store_true", help="keep the site's state and logs")

    def handle(self, *args, **options):
        missing = services_answer(options["postgres_url"], options["redis_url"])
        if missing:
            raise CommandError(f"The production profile needs PostgreSQL and Redis: {missing}")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        output = (options["output"] or settings.VAR_DIR / "load").resolve()
        output.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_dir = output / f"run-{stamp}"
        run_dir.mkdir()
        try:
            result = run_load(
                run_dir=run_dir,
                model_dir=Path(settings.LLM_MODEL).resolve(),
                users=options["users"],
                messages=options["messages"],
                tokens=options["tokens"],
                pause=options["pause"],
                start_within=options["start_within"],
                time_limit=options["time_limit"],
                postgres_url=options["postgres_url"],
                redis_url=options["redis_url"],
                say=self._say,
            )
        except Exception as exc:
            raise CommandError(f"The load test could not run: {exc}\nLogs in {run_dir}") from exc
        result["settings"] = {
            key: options[key]
            for key in ("users", "messages", "tokens", "pause", "start_within", "time_limit")
        }
        json_path = output / f"load-{stamp}.json"
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        shutil.copyfile(json_path, output / "latest.json")
        self._report(result)
        self.stdout.write(f"Wrote {json_path}")
        problems = self._problems(result)
        failed = bool(problems)
        if failed or options["keep"]:
            self.stdout.write(f"Site state and logs kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        if failed:
            raise CommandError("The load test found problems:\n- " + "\n- ".join(problems))

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _report(self, r: dict) -> None:
        rows = [
            ("users", r["users"]),
            ("requests sent / expected", f"{r['requests']} / {r['expected_requests']}"),
            ("ended with chat.done", r["done"]),
            ("answered (stop or length)", r["answered"]),
            ("stored complete, text as streamed", r["stored_complete"]),
            ("errors by code", json.dumps(r["errors_by_code"]) if r["errors_by_code"] else "none"),
            ("time to first token p50 / p95 / max", _ms3(r)),
            ("tokens, aggregate tokens/s", f"{r['tokens']}, {r['aggregate_tps']}"),
            ("conversation phase", f"{r['elapsed_s']} s"),
        ]
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.stdout.write(f"{label:<{width}}  {value}")

    @staticmethod
    def _problems(r: dict) -> list[str]:
        problems = list(r["storage_problems"])
        if r["timed_out"]:
            problems.append("the conversation phase ran past --time-limit")
        if r["requests"] != r["expected_requests"]:
            problems.append(f"{r['requests']} requests sent of {r['expected_requests']}")
        if r["done"] != r["requests"]:
            problems.append(f"{r['requests'] - r['done']} requests did not end with chat.done")
        return problems


def _ms3(r: dict) -> str:
    return " / ".join(
        "-" if r[key] is None else f"{r[key] / 1000:.2f} s"
        for key in ("ttft_p50_ms", "ttft_p95_ms", "ttft_max_ms")
    )
