"""Continuous batching with the real model: answers, joining, leaving, limits and text."""

import pytest
import torch

from chat.inference.params import SamplingParams
from chat.inference.scheduler import IncrementalDecoder, QueueFull, Scheduler

GREEDY = SamplingParams(max_new_tokens=12)


def _scheduler(engine, **limits) -> Scheduler:
    options = {"max_active": 8, "max_batch_tokens": 4096, "max_queue": 8} | limits
    return Scheduler(engine, **options)


def _prompt(engine, question: str, max_new_tokens: int = 12) -> list[int]:
    return engine.prompt_ids([{"role": "user", "content": question}], max_new_tokens)


def _run(scheduler: Scheduler, steps: int = 200) -> list[tuple[int, object]]:
    """Every event until the scheduler is idle, with the step that produced it."""
    events = []
    for step in range(steps):
        if not scheduler.has_work():
            return events
        events += [(step, event) for event in scheduler.step()]
    raise AssertionError(f"the scheduler was still busy after {steps} steps")


def _answers(events) -> dict[str, str]:
    answers: dict[str, str] = {}
    for _, event in events:
        answers[event.request_id] = answers.get(event.request_id, "") + event.text
    return answers


def _finish(events, request_id):
    return next(event for _, event in events if event.request_id == request_id and event.finished)


def _generate(engine, prompt_ids: list[int], max_new_tokens: int) -> str:
    """The answer of transformers' own generate(), one request alone."""
    with torch.inference_mode():
        output = engine.model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=engine.tokenizer.eos_token_id,
        )
    return engine.tokenizer.decode(output[0, len(prompt_ids) :], skip_special_tokens=True)


@pytest.fixture(scope="module")
def float32_engine(real_engine, prepared_model_dir):
    """The model in float32, whatever LLM_DTYPE says, for tests that compare tokens exactly.

    In bfloat16 a matrix product of another shape (a batch instead of one row, a padded
    prompt, a larger cache) rounds differently, and greedy answers may part after a few
    tokens; CPUs with native bfloat16 (AVX-512 BF16, AMX) and GPUs run the engine in it.
    """
    if real_engine.dtype == torch.float32:
        return real_engine
    from django.conf import settings

    from chat.inference.engine import Engine

    return Engine(
        prepared_model_dir,
        device="cpu",
        dtype="float32",
        system_prompt=settings.LLM_SYSTEM_PROMPT,
    )


def test_a_greedy_answer_to_a_factual_question_is_right(real_engine):
    scheduler = _scheduler(real_engine)
    scheduler.submit("q", _prompt(real_engine, "What is the capital of France?"), GREEDY)
    events = _run(scheduler)
    assert "Paris" in _answers(events)["q"]
    finish = _finish(events, "q")
    assert finish.finish_reason == "stop"
    assert finish.prompt_tokens == len(_prompt(real_engine, "What is the capital of France?"))
    assert 0 < finish.completion_tokens < 12
    assert scheduler.active() == 0
    assert scheduler.queued() == 0


def test_answers_in_a_batch_are_the_same_as_answered_alone(float32_engine):
    """Padding, positions and cache merging must not change a single greedy token."""
    real_engine = float32_engine
    first = _prompt(real_engine, "Name three colours of the rainbow.", 16)
    second = _prompt(real_engine, "Write one sentence about the sea and the wind at night.", 16)
    scheduler = _scheduler(real_engine)
    scheduler.submit("first", first, SamplingParams(max_new_tokens=16))
    events = [(0, event) for event in scheduler.step()]
    events += [(1, event) for event in scheduler.step()]
    scheduler.submit("second", second, SamplingParams(max_new_tokens=16))
    events += _run(scheduler)
    answers = _answers(events)
    assert answers["first"] == _generate(real_engine, first, 16)
    assert answers["second"] == _generate(real_engine, second, 16)


def test_newcomers_arriving_together_share_one_prefill_and_answer_as_alone(
    float32_engine, monkeypatch
):
    real_engine = float32_engine
    questions = {
        "short": "Hi!",
        "medium": "Name three colours of the rainbow.",
        "long": "Write one sentence about the sea, the wind at night and an old lighthouse.",
    }
    prompts = {name: _prompt(real_engine, question, 16) for name, question in questions.items()}
    alone = {}
    for name, prompt in prompts.items():
        scheduler = _scheduler(real_engine)
        scheduler.submit(name, prompt, SamplingParams(max_new_tokens=16))
        alone[name] = _answers(_run(scheduler))[name]

    scheduler = _scheduler(real_engine)
    passes = []
    forward = scheduler._forward
    monkeypatch.setattr(
        scheduler,
        "_forward",
        lambda cache, ids, *rest: passes.append(ids.shape) or forward(cache, ids, *rest),
    )
    for name, prompt in prompts.items():
        scheduler.submit(name, prompt, SamplingParams(max_new_tokens=16))
    first_step = scheduler.step()
    prefill_passes = len(passes) - 1  # the step's decode pass is the last one
    events = [(0, event) for event in first_step] + _run(scheduler)

    # One pass for three prompts of different lengths, left-padded to the longest...
    assert prefill_passes == 1
    assert passes[0] == (3, max(map(len, prompts.values())))
    # ...and padding changes no token: each answer is the one it gets alone.
    assert _answers(events) == alone


def test_a_second_request_joins_the_running_batch_instead_of_waiting(real_engine):
    scheduler = _scheduler(real_engine)
    long_answer = SamplingParams(max_new_tokens=10, ignore_eos=True)
    scheduler.submit("a", _prompt(real_engine, "Tell me a story."), long_answer)
    events = []
    for step in range(3):
        events += [(step, event) for event in scheduler.step()]
    scheduler.submit("b", _prompt(real_engine, "Tell me a joke."), long_answer)
    events += [(step + 3, event) for step, event in _run(scheduler)]

    b_first = min(step for step, event in events if event.request_id == "b" and event.text)
    a_done = next(step for step, event in events if event.request_id == "a" and event.finished)
    assert b_first < a_done
    # Both advanced in the same steps: one forward pass for the whole batch.
    a_steps = {step for step, event in events if event.request_id == "a"}
    b_steps = {step for step, event in events if event.request_id == "b"}
    assert len(a_steps & b_steps) >= 3
    assert _finish(events, "a").completion_tokens == 10
    assert _finish(events, "b").finish_reason == "length"


def test_a_cancelled_answer_leaves_the_batch_at_the_next_step(real_engine):
    scheduler = _scheduler(real_engine)
    endless = SamplingParams(max_new_tokens=50, ignore_eos=True)
    scheduler.submit("stopped", _prompt(real_engine, "Count to one hundred."), endless)
    scheduler.submit("other", _prompt(real_engine, "Count to ten."), endless)
    scheduler.step()
    scheduler.step()
    assert scheduler.active() == 2

    scheduler.cancel("stopped")
    events = scheduler.step()

    stopped = [event for event in events if event.request_id == "stopped"]
    assert len(stopped) == 1
    assert stopped[0].finished
    assert stopped[0].finish_reason == "cancelled"
    assert 0 < stopped[0].completion_tokens < 50
    assert scheduler.active() == 1
    later = scheduler.step()
    assert [event.request_id for event in later] == ["other"]
    scheduler.cancel("other")
    assert [event.finish_reason for event in scheduler.step()] == ["cancelled"]
    assert not scheduler.has_work()


def test_a_request_cancelled_while_waiting_never_starts(real_engine):
    scheduler = _scheduler(real_engine, max_active=1)
    scheduler.submit("running", _prompt(real_engine, "Hi"), GREEDY)
    scheduler.submit("waiting", _prompt(real_engine, "Hello"), GREEDY)
    scheduler.cancel("waiting")
    events = scheduler.step()
    waiting = [event for event in events if event.request_id == "waiting"]
    assert [(e.finish_reason, e.completion_tokens) for e in waiting] == [("cancelled", 0)]
    assert scheduler.queued() == 0


def test_requests_past_the_queue_limit_are_refused(real_engine):
    scheduler = _scheduler(real_engine, max_active=1, max_queue=2)
    prompt = _prompt(real_engine, "Hi")
    # One takes the free place in the batch, two wait.
    for request_id in ("a", "b", "c"):
        scheduler.submit(request_id, prompt, GREEDY)
    with pytest.raises(QueueFull):
        scheduler.submit("d", prompt, GREEDY)
    assert scheduler.queued() == 3


def test_the_token_budget_makes_extra_requests_wait_not_fail(real_engine):
    prompt = _prompt(real_engine, "What is the capital of France?")
    params = SamplingParams(max_new_tokens=4, ignore_eos=True)
    scheduler = _scheduler(real_engine, max_batch_tokens=len(prompt) + 4 + 5)
    scheduler.submit("first", prompt, params)
    scheduler.submit("second", prompt, params)
    scheduler.step()
    assert (scheduler.active(), scheduler.queued()) == (1, 1)

    events = _run(scheduler)
    assert _finish(events, "first").finish_reason == "length"
    assert _finish(events, "second").finish_reason == "length"
    first_done = next(s for s, e in events if e.request_id == "first" and e.finished)
    second_start = min(s for s, e in events if e.request_id == "second")
    assert second_start >= first_done


def test_the_limits_come_from_settings(real_engine, settings):
    settings.LLM_MAX_BATCH = 3
    settings.LLM_MAX_BATCH_TOKENS = 1000
    settings.LLM_QUEUE_SIZE = 5
    scheduler = Scheduler.from_settings(real_engine)
    assert (scheduler.max_active, scheduler.max_batch_tokens, scheduler.max_queue) == (3, 1000, 5)


def test_a_prompt_that_can_never_fit_is_refused_at_once(real_engine):
    scheduler = _scheduler(real_engine, max_batch_tokens=300)
    with pytest.raises(ValueError, match="at most 299 fit"):
        scheduler.submit("huge", [1] * 300, GREEDY)
    with pytest.raises(ValueError, match="empty"):
        scheduler.submit("empty", [], GREEDY)


def test_a_request_id_cannot_be_answered_twice_at_once(real_engine):
    scheduler = _scheduler(real_engine)
    scheduler.submit("same", _prompt(real_engine, "Hi"), GREEDY)
    with pytest.raises(ValueError, match="already"):
        scheduler.submit("same", _prompt(real_engine, "Hi"), GREEDY)


def test_ignore_eos_generates_exactly_max_new_tokens(real_engine):
    scheduler = _scheduler(real_engine)
    params = SamplingParams(max_new_tokens=20, ignore_eos=True)
    scheduler.submit("bench", _prompt(real_engine, "Say yes."), params)
    finish = _finish(_run(scheduler), "bench")
    assert (finish.finish_reason, finish.completion_tokens) == ("length", 20)


def test_a_one_token_answer_ends_in_the_step_that_admitted_it(real_engine):
    scheduler = _scheduler(real_engine)
    scheduler.submit("short", _prompt(real_engine, "Say hi."), SamplingParams(max_new_tokens=1))
    events = scheduler.step()
    assert [(e.finish_reason, e.completion_tokens) for e in events] == [("length", 1)]
    assert events[0].text
    assert not scheduler.has_work()


def test_a_tiny_top_p_samples_only_the_most_likely_token(float32_engine):
    real_engine = float32_engine
    prompt = _prompt(real_engine, "What is the capital of France?")
    scheduler = _scheduler(real_engine)
    scheduler.submit("greedy", prompt, GREEDY)
    scheduler.submit(
        "sampled", prompt, SamplingParams(temperature=1.5, top_p=1e-6, max_new_tokens=12)
    )
    answers = _answers(_run(scheduler))
    assert answers["sampled"] == answers["greedy"]


def test_sampled_answers_vary_but_stay_text(real_engine):
    torch.manual_seed(0)
    prompt = _prompt(real_engine, "Invent a name for a cat.")
    scheduler = _scheduler(real_engine)
    for number, top_p in enumerate([1.0, 1.0, 0.95, 0.95]):
        params = SamplingParams(temperature=1.2, top_p=top_p, max_new_tokens=12, ignore_eos=True)
        scheduler.submit(f"cat{number}", prompt, params)
    events = _run(scheduler)
    answers = _answers(events)
    assert len(set(answers.values())) > 1
    assert all(answer.strip() for answer in answers.values())
    assert {_finish(events, f"cat{n}").finish_reason for n in range(4)} == {"length"}


# --- Text that never splits a character -------------------------------------------------------


def test_a_character_split_across_tokens_is_released_whole(real_engine):
    tokenizer = real_engine.tokenizer
    text = "Café 😀 naïve 日本語 ok 🎉!"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # The test only means something if some token alone is half a character.
    assert any("\ufffd" in tokenizer.decode([token]) for token in ids)

    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token) for token in ids]
    pieces.append(decoder.flush())
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces) == tokenizer.decode(ids)


def test_an_answer_cut_off_inside_a_character_ends_without_half_of_it(real_engine):
    tokenizer = real_engine.tokenizer
    ids = tokenizer(" ok 😀", add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(token) for token in ids[:-1]]
    pieces.append(decoder.flush())
    assert all("\ufffd" not in piece for piece in pieces)
    assert "".join(pieces).rstrip() == " ok"


def test_streamed_answers_with_emoji_never_carry_half_a_character(real_engine):
    scheduler = _scheduler(real_engine)
    # The model answers this with emoji, each of them several tokens long.
    prompt = _prompt(real_engine, "What is the emoji for a smiling face?")
    scheduler.submit("emoji", prompt, SamplingParams(max_new_tokens=12))
    texts = [event.text for _, event in _run(scheduler)]
    assert all("\ufffd" not in text for text in texts)
    assert any(ord(character) > 0xFFFF for character in "".join(texts))


@pytest.fixture(scope="module")
def int8_engine(prepared_model_dir):
    from django.conf import settings

    from chat.inference.engine import Engine

    # With the configured system prompt, as served (without any, int8 loses this answer).
    return Engine(
        prepared_model_dir,
        device="cpu",
        dtype="bfloat16",
        quantize="int8",
        system_prompt=settings.LLM_SYSTEM_PROMPT,
    )


def test_int8_quantises_the_decoder_layers_but_not_the_embeddings_or_output(int8_engine):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    model = int8_engine.model
    assert int8_engine.quantize == "int8"
    # The int8 kernels compute in float32, so a bfloat16 request becomes float32.
    assert int8_engine.dtype == torch.float32
    quantised = [m for m in model.modules() if isinstance(m, DynamicQuantizedLinear)]
    # Seven per decoder layer (attention q, k, v, o; MLP gate, up, down); not the output.
    assert len(quantised) == 7 * model.config.num_hidden_layers
    assert type(model.get_output_embeddings()) is torch.nn.Linear
    # The input embeddings are looked up, not multiplied: they keep their exact weights.
    assert type(model.get_input_embeddings()) is torch.nn.Embedding
    assert model.get_input_embeddings().weight.dtype == torch.float32


def test_int8_still_knows_the_capital_of_france(int8_engine):
    scheduler = _scheduler(int8_engine)
    scheduler.submit("q", _prompt(int8_engine, "What is the capital of France?"), GREEDY)
    assert "Paris" in _answers(_run(scheduler))["q"]


def test_the_quantisation_comes_from_settings(prepared_model_dir, settings, monkeypatch):
    from chat.inference import engine as engine_module

    seen = {}
    monkeypatch.setattr(engine_module.Engine, "__init__", lambda self, *a, **kw: seen.update(kw))
    settings.LLM_QUANTIZE = "int8"
    engine_module.Engine.from_settings()
    assert seen["quantize"] == "int8"


def test_answers_longer_than_the_cache_growth_step_are_not_cut_off(float32_engine, monkeypatch):
    real_engine = float32_engine
    # The cache grows when full; every answer crossing that point (128 columns past the
    # prompt by default) once ended in error. A small step crosses it many times.
    long_answer = SamplingParams(max_new_tokens=40, ignore_eos=True)
    prompt = _prompt(real_engine, "Write a long story about a lighthouse keeper.", 40)
    scheduler = _scheduler(real_engine)
    scheduler.submit("unchanged", prompt, long_answer)
    without_growth = _answers(_run(scheduler))["unchanged"]

    monkeypatch.setattr("chat.inference.scheduler.GROWTH_COLUMNS", 3)
    scheduler = _scheduler(real_engine)
    scheduler.submit("long", prompt, long_answer)
    events = _run(scheduler)

    finish = _finish(events, "long")
    assert finish.finish_reason == "length"
    assert finish.completion_tokens == 40
    assert _answers(events)["long"] == without_growth
