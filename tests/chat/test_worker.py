"""The worker's own bookkeeping, without a model."""

from chat.inference.worker import Generation, InferenceWorker


class LayerThatAcceptsMeanwhile:
    """A channel layer whose send lets another request be accepted, as the event loop does
    while a real send awaits Redis."""

    def __init__(self, worker):
        self.worker = worker
        self.sent = []

    async def send(self, channel, message):
        self.sent.append((channel, message["type"]))
        self.worker.generations[f"new-{len(self.sent)}"] = Generation("x", "reply", "m", 0.0)


async def test_text_is_flushed_while_new_requests_arrive():
    worker = InferenceWorker(name="w", engine_factory=object, scheduler_factory=object)
    worker.layer = LayerThatAcceptsMeanwhile(worker)
    for n in range(3):
        generation = Generation(f"r{n}", f"reply-{n}", f"m{n}", 0.0)
        generation.pending = "text"
        worker.generations[generation.request_id] = generation

    await worker._flush(now=1.0)

    assert [channel for channel, _ in worker.layer.sent] == ["reply-0", "reply-1", "reply-2"]
