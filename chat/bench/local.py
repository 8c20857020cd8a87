"""The two in-process phases: plain transformers ``generate`` and the engine's scheduler.

Each runs in a child process of its own (``bench_chat --phase ...``), so the peak memory it
reports (VmHWM) is that phase's alone, and one model's memory never counts for the other.
"""

import time

from django.conf import settings

from chat.bench.metrics import Stream, peak_rss_mb, summarise

# Questions whose honest answers are long, so that the web path (which cannot ignore the
# end-of-answer token) writes the full max_new_tokens too, and its tokens/s are measured over
# answers of the length asked for, as the engine's are. Each was checked to run past 256
# tokens, greedy, with the default model both in transformers (float32) and as llama.cpp's
# Q4_1 GGUF. Stream i asks PROMPTS[i % 4].
PROMPTS = (
    "Write a long story about a lighthouse keeper and the storm of the century.",
    "Explain in detail, step by step, how a bicycle is built in a factory.",
    "Write a detailed essay on the history of the printing press.",
    "Explain in detail how a city's water supply works, from the reservoir to the tap.",
)
WARM_UP_TOKENS = 4


def prompt_for(index: int) -> str:
    return PROMPTS[index % len(PROMPTS)]


def _memory() -> dict:
    import torch

    memory = {"peak_rss_mb": peak_rss_mb()}
    if torch.cuda.is_available():
        memory["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return memory


def run_baseline(levels: list[int], tokens: int) -> dict:
    """Plain ``model.generate`` in float32 (the yardstick): one request, then a static
    left-padded batch of N for each N > 1. Greedy, exactly ``tokens`` new tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        """Records when each decoding step's tokens exist (the first put is the prompt)."""

        def __init__(self):
            self.times: list[float] = []
            self.prompt_seen = False

        def put(self, value):
            if self.prompt_seen:
                self.times.append(time.perf_counter())
            self.prompt_seen = True

        def end(self):
            pass

    model_dir = settings.LLM_MODEL
    device = torch.device(settings.LLM_DEVICE or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False, dtype=torch.float32
    ).to(device)
    model.eval()

    def texts(count: int) -> list[str]:
        rendered = []
        for index in range(count):
            messages = [{"role": "user", "content": prompt_for(index)}]
            if settings.LLM_SYSTEM_PROMPT:
                messages.insert(0, {"role": "system", "content": settings.LLM_SYSTEM_PROMPT})
            rendered.append(
                tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            )
        return rendered

    def generate(count: int, new_tokens: int) -> list[Stream]:
        batch = tokenizer(
            texts(count), return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)
        clock = Clock()
        start = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                **batch,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                streamer=clock,
            )
        end = time.perf_counter()
        produced = output.shape[1] - batch["input_ids"].shape[1]
        streams = []
        for _ in range(count):
            stream = Stream(start=start, tokens=produced, end=end)
            for step, at in enumerate(clock.times, start=1):
                stream.add(at, step)
            streams.append(stream)
        return streams

    generate(1, WARM_UP_TOKENS)
    results = {"device": str(device), "dtype": "float32", "levels": {}}
    for count in sorted({1, *levels}):
        summary = summarise(generate(count, tokens))
        summary.update(_memory())
        results["levels"][str(count)] = summary
    return results


def run_engine(levels: list[int], tokens: int) -> dict:
    """The worker's engine and scheduler alone (no channel layer, no web): N requests
    submitted together, stepped until all end; ignore_eos, greedy, ``tokens`` each."""
    import torch

    from chat.inference.engine import Engine
    from chat.inference.params import SamplingParams
    from chat.inference.scheduler import Scheduler

    engine = Engine.from_settings()
    scheduler = Scheduler.from_settings(engine)
    scheduler.max_active = max(scheduler.max_active, max(levels))

    def run(count: int, new_tokens: int, tag: str) -> list[Stream]:
        params = SamplingParams(temperature=0.0, max_new_tokens=new_tokens, ignore_eos=True)
        prompts = [
            engine.prompt_ids([{"role": "user", "content": prompt_for(i)}], new_tokens)
            for i in range(count)
        ]
        start = time.perf_counter()
        streams = {}
        for index, ids in enumerate(prompts):
            scheduler.submit(f"{tag}-{index}", ids, params)
            streams[f"{tag}-{index}"] = Stream(start=start)
        while scheduler.has_work():
            events = scheduler.step()
            now = time.perf_counter()
            for event in events:
                stream = streams[event.request_id]
                stream.add(now, event.completion_tokens)
                stream.tokens = event.completion_tokens
                if event.finished:
                    stream.end = now
                    if event.finish_reason not in ("stop", "length"):
                        stream.error = event.finish_reason
        return list(streams.values())

    run(1, WARM_UP_TOKENS, "warm")
    results = {
        "device": str(engine.device),
        "dtype": str(engine.dtype).removeprefix("torch."),
        "quantize": getattr(settings, "LLM_QUANTIZE", ""),
        "threads": torch.get_num_threads(),
        "levels": {},
    }
    for count in levels:
        summary = summarise(run(count, tokens, f"c{count}"))
        summary.update(_memory())
        results["levels"][str(count)] = summary
    return results
