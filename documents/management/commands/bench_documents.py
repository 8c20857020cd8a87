import time

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from chat.retrieval import Sources
from documents import embedding, indexing, services, vectors
from documents.models import Chunk, Document
from documents.search import DocumentSearch


class _RolledBack(Exception):
    pass


class Command(BaseCommand):
    help = (
        "Measure document indexing (a generated text of --passages passages through "
        "extraction, passages, embeddings and storage) and search (--chunks encrypted vectors, "
        "cold and warm). Runs in a transaction that is rolled back: nothing stays."
    )

    def add_arguments(self, parser):
        parser.add_argument("--passages", type=int, default=200)
        parser.add_argument("--chunks", type=int, nargs="+", default=[1000, 10000, 50000])
        parser.add_argument("--queries", type=int, default=20)

    def handle(self, *args, passages, chunks, queries, **options):
        try:
            with transaction.atomic():
                self._bench(passages, chunks, queries)
                raise _RolledBack
        except _RolledBack:
            pass

    def _bench(self, passages, chunk_counts, queries):
        user = get_user_model().objects.create_user(username="bench-documents-user")
        text = "\n\n".join(
            f"Section {n}. " + f"Paragraph {n} of the generated report about topic {n % 37}. " * 14
            for n in range(passages)
        )
        document = services.upload(actor=user, name="bench.txt", data=text.encode())
        started = time.perf_counter()
        indexing.run_pending("bench")
        seconds = time.perf_counter() - started
        document.refresh_from_db()
        made = document.chunks.count()
        self.stdout.write(
            f"indexing: {len(text):,} characters -> {made} passages in {seconds:.1f} s "
            f"({made / seconds:.1f} passages/s, {len(text) / seconds / 1000:.0f} k chars/s), "
            f"status {document.status}"
        )
        search = DocumentSearch()
        rng = np.random.default_rng(0)
        model = embedding.current()
        for count in chunk_counts:
            bench_document = Document.objects.create(
                owner=user,
                name=f"bench {count}",
                kind="text",
                size=0,
                status=Document.Status.READY,
                embedding_model=model.identity,
                indexed_at=timezone.now(),
            )
            matrix = rng.standard_normal((count, model.dimensions)).astype(np.float32)
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            started = time.perf_counter()
            Chunk.objects.bulk_create(
                (
                    Chunk(
                        document=bench_document,
                        position=i,
                        passage=f"Generated passage {i}.",
                        vector=vectors.encode(row),
                        embedding_model=model.identity,
                    )
                    for i, row in enumerate(matrix)
                ),
                batch_size=1000,
            )
            stored = time.perf_counter() - started
            sources = Sources(documents=(str(bench_document.pk),))
            vectors.cache.clear()
            started = time.perf_counter()
            search.retrieve(user, "topic 5 of the report", sources, max_chars=3000)
            cold = time.perf_counter() - started
            timings = []
            for n in range(queries):
                started = time.perf_counter()
                search.retrieve(user, f"paragraph {n} of the report", sources, max_chars=3000)
                timings.append(time.perf_counter() - started)
            warm = sorted(timings)
            self.stdout.write(
                f"search over {count:,} passages: store {stored:.1f} s; first query (decrypt) "
                f"{cold * 1000:.0f} ms; cached p50 {warm[len(warm) // 2] * 1000:.0f} ms, "
                f"p95 {warm[int(len(warm) * 0.95) - 1] * 1000:.0f} ms; cache "
                f"{count * model.dimensions * 4 / 1e6:.0f} MB"
            )
            bench_document.delete()
