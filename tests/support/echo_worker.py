"""`python -m tests.support.echo_worker NAME`: an inference worker process whose answers
echo the system prompt it was given (EchoEngine), for browser tests of instructions on the
production profile (the web process and this worker share Redis and the database)."""

import asyncio
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from chat.inference.worker import InferenceWorker
    from tests.support.inference import EchoEngine, EchoScheduler

    worker = InferenceWorker(
        name=sys.argv[1], engine_factory=EchoEngine, scheduler_factory=EchoScheduler
    )
    asyncio.run(worker.run())


if __name__ == "__main__":
    main()
