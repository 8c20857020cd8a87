import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.inference.worker import InferenceWorker
from core import crypto, metrics_endpoint


class Command(BaseCommand):
    help = (
        "Run an inference worker: load the model (LLM_MODEL) and serve chat requests from the "
        "channel layer until stopped. Needs REDIS_URL (the production profile); start one per "
        "GPU, on any number of hosts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", help="name shown in /healthz (default: host-pid-random)")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="port for this worker's Prometheus metrics, 0 for none (default: "
            "WORKER_METRICS_PORT); each worker on a host needs its own",
        )

    def handle(self, *args, name, metrics_port, **options):
        if not settings.REDIS_URL:
            raise CommandError(
                "inference_worker talks to web processes through Redis: set REDIS_URL (and "
                "DATABASE_URL) as for the web processes. Without them, `manage.py serve` runs "
                "its own worker."
            )
        try:
            crypto.check_keyring_opens_stored_data()
        except crypto.DecryptionError as exc:
            raise CommandError(str(exc)) from None
        try:
            metrics_endpoint.start_metrics_server(
                settings.WORKER_METRICS_PORT if metrics_port is None else metrics_port,
                settings.WORKER_METRICS_ADDR,
                certfile=settings.WORKER_METRICS_CERT,
                keyfile=settings.WORKER_METRICS_KEY,
            )
        except metrics_endpoint.MetricsServerError as exc:
            raise CommandError(str(exc)) from None
        asyncio.run(self._serve(InferenceWorker(name=name)))

    async def _serve(self, worker: InferenceWorker) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        self.stdout.write(f"Inference worker {worker.name} starting (model {settings.LLM_MODEL})")
        self.stdout.flush()
        try:
            await worker.run()
        except asyncio.CancelledError:
            self.stdout.write(f"Inference worker {worker.name} stopped.")
