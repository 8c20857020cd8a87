import os
import signal
import socket
import threading

from django.core.management.base import BaseCommand, CommandError

from core import crypto
from documents.indexing import run_pending, run_worker


class Command(BaseCommand):
    help = (
        "Index uploaded documents (extraction, passages, embeddings) until stopped: the "
        "production profile's document worker. Start any number, on any host that reaches "
        "the database; each takes one document at a time. On SIGTERM or SIGINT it finishes "
        "the batch of passages it is writing and hands its document back to the next worker. "
        "With --once, index what is waiting and exit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", help="name in the logs (default: host-pid)")
        parser.add_argument("--once", action="store_true", help="index what waits, then exit")

    def handle(self, *args, name, once, **options):
        try:
            crypto.check_keyring_opens_stored_data()
        except crypto.DecryptionError as exc:
            raise CommandError(str(exc)) from None
        name = name or f"{socket.gethostname()}-{os.getpid()}"
        if once:
            done = run_pending(name)
            self.stdout.write(f"Indexed {done} document(s).")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"Document worker {name} started.")
        self.stdout.flush()
        run_worker(stop, worker=name)
        self.stdout.write(f"Document worker {name} stopped.")
