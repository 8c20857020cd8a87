import asyncio
import signal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from chat.inference.worker import InferenceWorker
from core import crypto, metrics_endpoint


class Command(BaseCommand):
    help = (
        "Run an inference worker: load the model (LLM_MODEL) and serve chat requests from the "
        "channel layer until stopped; or, with --upstream, serve them from an OpenAI-compatible "
        "engine (vLLM, TGI, llama.cpp's server, Ollama). Needs REDIS_URL (the production "
        "profile); start one per GPU and model, on any number of hosts."
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
        parser.add_argument(
            "--upstream",
            metavar="URL",
            help="serve from this OpenAI-compatible server (http(s)://host:port[/v1]) on an "
            "internal network, instead of loading LLM_MODEL",
        )
        parser.add_argument(
            "--upstream-model",
            metavar="NAME",
            default="",
            help="the model's name at the upstream, as its /v1/models lists it; users pick it "
            "by this name",
        )
        parser.add_argument(
            "--upstream-context",
            metavar="TOKENS",
            type=int,
            default=0,
            help="the upstream model's context length, for engines that do not report it "
            "(llama.cpp's server: its --n_ctx)",
        )

    def handle(
        self, *args, name, metrics_port, upstream, upstream_model, upstream_context, **options
    ):
        if (upstream_model or upstream_context) and not upstream:
            raise CommandError("--upstream-model and --upstream-context go with --upstream URL.")
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
        if upstream:
            worker = self._upstream_worker(name, upstream, upstream_model, upstream_context)
        else:
            worker = InferenceWorker(name=name)
        asyncio.run(self._serve(worker))

    @staticmethod
    def _upstream_worker(name, url, model, context):
        from chat.inference.upstream import UpstreamEngine, UpstreamWorker

        if context < 0:
            raise CommandError("--upstream-context is a number of tokens, at least 1.")
        try:
            engine = UpstreamEngine.from_settings(url, model, context=context)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        return UpstreamWorker(engine, name=name)

    async def _serve(self, worker: InferenceWorker) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        self.stdout.write(f"Inference worker {worker.name} starting (model {worker.model_name})")
        self.stdout.flush()
        try:
            await worker.run()
        except asyncio.CancelledError:
            self.stdout.write(f"Inference worker {worker.name} stopped.")
