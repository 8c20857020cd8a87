"""`manage.py bench_search`: how long a search over one user's conversations takes.

By default it runs in a throwaway state directory of its own (fresh keys, a fresh SQLite
database), so it never touches the site's data: one user with --conversations
conversations of --messages messages each (questions and answers of made-up words, stored
encrypted with their search filters, as the site stores them), then each kind of query
--repeat times. Prints the time of each (median and slowest) and the target. See
docs/performance.md.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from chat import conversation_search, search, services
from chat.models import Conversation, Message

REPO = Path(__file__).resolve().parents[3]
# The target: results in under a second for a user with 2,000 conversations of 20 messages.
TARGET_SECONDS = 1.0
NEEDLE = "quasarvex"
SHARED = "meridian"
VOCABULARY_SIZE = 5000
QUESTION_WORDS = 18
ANSWER_WORDS = 90
BATCH = 1000


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))
        for _ in range(VOCABULARY_SIZE)
    ]


def _sentence(rng: random.Random, vocabulary: list[str], count: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(count)).capitalize() + "."


class Command(BaseCommand):
    help = (
        "Time searches over one user's conversations (default 2,000 conversations of 20 "
        "messages) in a throwaway state directory; prints median and slowest per query."
    )

    def add_arguments(self, parser):
        parser.add_argument("--conversations", type=int, default=2000)
        parser.add_argument("--messages", type=int, default=20)
        parser.add_argument("--repeat", type=int, default=5)
        parser.add_argument(
            "--json", dest="json_path", type=Path, default=None, help="also write the figures here"
        )
        parser.add_argument(
            "--here",
            action="store_true",
            help="use the configured database (adds a bench user and deletes it afterwards)",
        )

    def handle(self, *args, conversations, messages, repeat, json_path, here, **options):
        if conversations < 1 or messages < 2 or repeat < 1:
            raise CommandError("Use at least 1 conversation, 2 messages each and 1 repeat.")
        if not here:
            self._in_throwaway_state(conversations, messages, repeat, json_path)
            return
        user = self._seed(conversations, messages)
        try:
            figures = self._measure(user, repeat)
        finally:
            with transaction.atomic():
                Conversation.objects.filter(user=user).delete()
                user.delete()
        figures.update(conversations=conversations, messages_each=messages)
        self._report(figures)
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2) + "\n")

    def _in_throwaway_state(self, conversations, messages, repeat, json_path) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-search-") as directory:
            env = {
                key: value
                for key, value in os.environ.items()
                if key not in {"DATABASE_URL", "REDIS_URL", "CHAT_ENCRYPTION_KEYS"}
            }
            env["VAR_DIR"] = directory
            steps = [
                [sys.executable, "-m", "core.keys"],
                [sys.executable, "manage.py", "migrate", "--noinput"],
            ]
            for step in steps:
                done = subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
                    step, cwd=REPO, env=env, capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise CommandError(f"{' '.join(step[1:])} failed:\n{done.stdout}{done.stderr}")
            run = [
                sys.executable,
                "manage.py",
                "bench_search",
                "--here",
                *("--conversations", str(conversations)),
                *("--messages", str(messages)),
                *("--repeat", str(repeat)),
            ]
            if json_path:
                run += ["--json", str(json_path.resolve())]
            done = subprocess.run(run, cwd=REPO, env=env, check=False)  # noqa: S603
            if done.returncode != 0:
                raise CommandError("The search bench failed; its output is above.")

    def _seed(self, conversations: int, per_conversation: int):
        rng = random.Random(15)  # noqa: S311 (made-up text, not security)
        vocabulary = _vocabulary(rng)
        user = get_user_model().objects.create_user(username=f"bench-search-{uuid.uuid4().hex[:8]}")
        now = timezone.now()
        started = time.perf_counter()
        needle_at = (
            conversations - 1,
            per_conversation - 1,
        )  # the oldest conversation's last answer
        step = max(1, BATCH // per_conversation)
        for first in range(0, conversations, step):
            chunk = range(first, min(conversations, first + step))
            rows, texts = [], []
            for index in chunk:
                stamp = now - timedelta(minutes=index)
                title = _sentence(rng, vocabulary, 5)
                rows.append(
                    Conversation(
                        user=user,
                        title=title,
                        search_bits=search.bits_for(title),
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
            Conversation.objects.bulk_create(rows)
            for conversation, index in zip(rows, chunk, strict=True):
                for position in range(per_conversation):
                    question = position % 2 == 0
                    text = _sentence(rng, vocabulary, QUESTION_WORDS if question else ANSWER_WORDS)
                    if position == 3:
                        text += f" The {SHARED} figures."
                    if (index, position) == needle_at:
                        text += f" The code name was {NEEDLE.capitalize()}."
                    texts.append(
                        Message(
                            conversation=conversation,
                            role=Message.Role.USER if question else Message.Role.ASSISTANT,
                            content=text,
                            search_bits=search.bits_for(text),
                            created_at=conversation.created_at + timedelta(seconds=position),
                        )
                    )
            Message.objects.bulk_create(texts)
        self.stdout.write(
            f"Stored {conversations} conversations of {per_conversation} messages "
            f"(encrypted, with search filters) in {time.perf_counter() - started:.1f} s."
        )
        return user

    def _measure(self, user, repeat: int) -> dict:
        queries = {
            "one old answer (a word in one body)": NEEDLE,
            "a word beginning (prefix)": NEEDLE[:5],
            "no match anywhere": "zzqqxxnothing",
            f"many matches (first {search.RESULTS_MAX})": SHARED,
            "two words": f"{SHARED} figures",
        }
        figures = {"target_seconds": TARGET_SECONDS, "queries": {}}
        for label, text in queries.items():
            query = search.Query.parse(text)
            times, found = [], None
            for _ in range(repeat):
                started = time.perf_counter()
                found = conversation_search.search(user, query)
                json.dumps(found)
                times.append(time.perf_counter() - started)
            figures["queries"][label] = {
                "query": text,
                "results": len(found["results"]),
                "median_seconds": statistics.median(times),
                "max_seconds": max(times),
            }
        figures["list"] = self._measure_list(user, repeat)
        return figures

    @staticmethod
    def _measure_list(user, repeat: int) -> dict:
        """The conversation list with as many conversations: its first page and the last."""
        rows = {}
        cursor = None
        while True:
            page = services.conversation_page(user, after=cursor)
            if page.next is None:
                break
            cursor = page.next
        for label, after in (("first page of the list", None), ("last page of the list", cursor)):
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                page = services.conversation_page(user, after=after)
                json.dumps([services.conversation_as_item(c) for c in page.conversations])
                times.append(time.perf_counter() - started)
            rows[label] = {
                "results": len(page.conversations),
                "median_seconds": statistics.median(times),
                "max_seconds": max(times),
            }
        return rows

    def _report(self, figures: dict) -> None:
        database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        self.stdout.write(
            f"Search over {figures['conversations']} conversations x {figures['messages_each']} "
            f"messages ({database}); target < {TARGET_SECONDS:g} s"
        )
        self.stdout.write(f"{'query':40} {'results':>7} {'median':>9} {'slowest':>9}")
        worst = 0.0
        for label, row in figures["queries"].items():
            worst = max(worst, row["max_seconds"])
            self.stdout.write(
                f"{label:40} {row['results']:>7} {row['median_seconds'] * 1000:>7.0f} ms "
                f"{row['max_seconds'] * 1000:>6.0f} ms"
            )
        verdict = "met" if worst < TARGET_SECONDS else "NOT met"
        self.stdout.write(f"Slowest search: {worst * 1000:.0f} ms; target {verdict}.")
        for label, row in figures["list"].items():
            self.stdout.write(
                f"{label:40} {row['results']:>7} {row['median_seconds'] * 1000:>7.0f} ms "
                f"{row['max_seconds'] * 1000:>6.0f} ms"
            )
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        self.stdout.write(f"Load average during the run (1, 5, 15 min): {load}.")
