"""The inference worker's Prometheus metrics, and the worker count web processes report.

A worker (its own process, or embedded in a web process) measures its queue, batch, tokens
and latencies here; ``InferenceWorkersCollector`` reads the shared worker registry at each
scrape of a web process. Served by ``core.metrics_endpoint``.
"""

import contextlib
import logging
import time

from django.conf import settings
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chat.inference import registry

logger = logging.getLogger(__name__)

# --- Inference workers (each in its own process, or embedded in the web process) ------------

QUEUE_DEPTH = Gauge(
    "llmchat_inference_queue_depth",
    "Requests this worker accepted that wait for a place in its running batch.",
)
QUEUE_CAPACITY = Gauge(
    "llmchat_inference_queue_capacity",
    "Requests this worker lets wait beyond its batch (LLM_QUEUE_SIZE); past it, users are "
    "told the assistant is busy.",
)
ACTIVE_SEQUENCES = Gauge(
    "llmchat_inference_active_sequences",
    "Answers this worker is decoding together in its running batch.",
)
TOKENS_GENERATED = Counter(
    "llmchat_inference_tokens_generated", "Answer tokens this worker generated."
)
GENERATIONS = Counter(
    "llmchat_inference_generations",
    "Answers this worker finished, by finish reason (stop, length, cancelled, error).",
    ["finish_reason"],
)
# From 50 ms (a short prompt on a GPU) to 30 s (a long prompt on a busy CPU worker).
TIME_TO_FIRST_TOKEN = Histogram(
    "llmchat_inference_time_to_first_token_seconds",
    "Time from a worker accepting a request to the first text of its answer.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0),
)
# From 5 ms (a small batch on a GPU) to 2 s (a long prefill holding up the whole batch).
INTER_TOKEN_LATENCY = Histogram(
    "llmchat_inference_inter_token_latency_seconds",
    "Time between two tokens of one answer, observed once per token.",
    buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0),
)
WORKER_LAST_HEARTBEAT = Gauge(
    "llmchat_worker_last_heartbeat_timestamp_seconds",
    "When this worker last wrote its heartbeat to the shared registry (Unix time).",
    ["worker"],
)

WORKER_MODEL = Gauge(
    "llmchat_worker_model_info",
    "The model this worker serves (1 while it runs; the model is in the label).",
    ["worker", "model"],
)

WORKER_STATES = ("loading", "ready", "failed", "stopping")


class InferenceWorkersCollector(Collector):
    """Workers with a live heartbeat in the shared registry, as this process sees them at
    the scrape, by state; 0 for every state when the registry (Redis) cannot be read."""

    def collect(self):
        counts = dict.fromkeys(WORKER_STATES, 0)
        per_model: dict[str, dict[str, int]] = {}
        try:
            workers = registry.live_workers()
        except Exception:
            # The shared cache (Redis) is down: this process sees no worker, and says why.
            logger.warning("The worker registry could not be read for /metrics", exc_info=True)
            workers = []
        for worker in workers:
            if worker.get("state") in counts:
                counts[worker["state"]] += 1
                model = per_model.setdefault(
                    str(worker.get("model") or ""), dict.fromkeys(WORKER_STATES, 0)
                )
                model[worker["state"]] += 1
        family = GaugeMetricFamily(
            "llmchat_inference_workers",
            "Inference workers with a live heartbeat in the shared registry, as this web "
            "process sees them, by state.",
            labels=["state"],
        )
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family
        by_model = GaugeMetricFamily(
            "llmchat_inference_model_workers",
            "Inference workers with a live heartbeat, as this web process sees them, by the "
            "model they serve and by state.",
            labels=["model", "state"],
        )
        for model, states in sorted(per_model.items()):
            for state, count in states.items():
                by_model.add_metric([model, state], count)
        yield by_model


REGISTRY.register(InferenceWorkersCollector())


class GenerationMetrics:
    """Observes one answer as its tokens arrive: tokens and the gaps between them. (Its time
    to first token is observed by the worker, which keeps that moment anyway.)"""

    def __init__(self):
        self.tokens = 0
        self.last_token_at: float | None = None

    def step(self, event, now: float) -> None:
        """Account for one scheduler event (cumulative ``completion_tokens``, new ``text``)."""
        new_tokens = event.completion_tokens - self.tokens
        if new_tokens > 0:
            TOKENS_GENERATED.inc(new_tokens)
            if self.last_token_at is not None:
                # Tokens of one step share its end time: spread the gap over them.
                gap = (now - self.last_token_at) / new_tokens
                for _ in range(new_tokens):
                    INTER_TOKEN_LATENCY.observe(gap)
            self.tokens = event.completion_tokens
            self.last_token_at = now

    def finished(self, finish_reason: str) -> None:
        GENERATIONS.labels(finish_reason).inc()


def watch_scheduler(scheduler) -> None:
    """Read queue depth and batch size from ``scheduler`` at each scrape."""
    QUEUE_DEPTH.set_function(lambda: scheduler.queued())
    ACTIVE_SEQUENCES.set_function(lambda: scheduler.active())
    QUEUE_CAPACITY.set(settings.LLM_QUEUE_SIZE)


def worker_heartbeat(name: str, model: str = "") -> None:
    WORKER_LAST_HEARTBEAT.labels(name).set(time.time())
    if model:
        WORKER_MODEL.labels(name, model).set(1)


def worker_stopped(name: str) -> None:
    """The worker no longer serves: its gauges read zero and its heartbeat series ends."""
    QUEUE_DEPTH.set_function(lambda: 0)
    ACTIVE_SEQUENCES.set_function(lambda: 0)
    # Some prometheus-client versions raise KeyError for a worker that never beat.
    with contextlib.suppress(KeyError):
        WORKER_LAST_HEARTBEAT.remove(name)
    for labels in [labels for labels in _label_sets(WORKER_MODEL) if labels[0] == name]:
        with contextlib.suppress(KeyError):
            WORKER_MODEL.remove(*labels)


def _label_sets(metric) -> list[tuple[str, ...]]:
    return [
        tuple(sample.labels[name] for name in ("worker", "model"))
        for family in metric.collect()
        for sample in family.samples
    ]
