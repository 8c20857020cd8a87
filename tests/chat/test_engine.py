"""The engine: offline loading, prompts that fit the context, and sampling parameters."""

import importlib.metadata
import io
import socket

import pytest
import torch
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

import chat.inference.engine as engine_module
from chat.inference.engine import Engine
from chat.inference.params import SamplingParams
from chat.management.commands import prepare_model

SYSTEM_PROMPT = "You are the test assistant."


def _conversation(turns: int) -> list[dict]:
    messages = []
    for number in range(1, turns + 1):
        messages.append({"role": "user", "content": f"Question number {number}: " + "word " * 20})
        messages.append({"role": "assistant", "content": f"Answer number {number}: " + "ok " * 20})
    messages.append({"role": "user", "content": "The newest question."})
    return messages


NETWORK_ATTEMPTS: list[tuple] = []


@pytest.fixture(scope="module")
def offline_small_engine(prepared_model_dir):
    """An engine with a 200-token context, loaded while every network connection fails."""

    def refuse(*args, **kwargs):
        # Recorded as well as refused: a library could swallow the error and carry on.
        NETWORK_ATTEMPTS.append(args)
        raise OSError("network access is forbidden in this test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        return Engine(prepared_model_dir, system_prompt=SYSTEM_PROMPT, max_context=200)


def test_the_model_loads_with_every_network_connection_refused(
    offline_small_engine, prepared_model_dir
):
    assert NETWORK_ATTEMPTS == []
    assert offline_small_engine.model_name == prepared_model_dir.name
    assert offline_small_engine.context_length == 200
    # No GPU here: the CPU, in bfloat16 where the CPU computes it natively.
    assert offline_small_engine.device.type == "cpu"
    expected = torch.bfloat16 if engine_module.native_bf16_cpu() else torch.float32
    assert offline_small_engine.dtype == expected


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_the_cpu_dtype_follows_native_bf16_support(
    prepared_model_dir, monkeypatch, native, expected
):
    monkeypatch.setattr(engine_module, "native_bf16_cpu", lambda: native)

    engine = Engine(prepared_model_dir, device="cpu")

    assert engine.dtype == getattr(torch, expected)
    assert next(engine.model.parameters()).dtype == getattr(torch, expected)


def test_a_cpu_engine_leaves_cudnn_attention_alone_and_the_gpu_switch_turns_it_off(
    prepared_model_dir,
):
    # A GPU engine calling the switch was measured on an H200 (docs/performance.md), not here.
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        Engine(prepared_model_dir, device="cpu")
        assert torch.backends.cuda.cudnn_sdp_enabled()

        engine_module._skip_cudnn_attention()
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_a_missing_model_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="prepare_model"):
        Engine(tmp_path / "no-model-here")


def test_the_prompt_starts_with_the_system_prompt_and_asks_for_an_answer(real_engine):
    ids = real_engine.prompt_ids([{"role": "user", "content": "Hello there"}], 16)
    text = real_engine.tokenizer.decode(ids)
    assert text.startswith(f"<|im_start|>system\n{real_engine.system_prompt}<|im_end|>")
    assert text.endswith("<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n")


def test_a_long_history_loses_its_oldest_turns_first(offline_small_engine):
    engine = offline_small_engine
    ids = engine.prompt_ids(_conversation(turns=6), max_new_tokens=50)
    text = engine.tokenizer.decode(ids)
    assert len(ids) <= engine.context_length - 50
    assert text.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>")
    assert text.endswith("The newest question.<|im_end|>\n<|im_start|>assistant\n")
    assert "Answer number 6" in text
    assert "Question number 1:" not in text
    # Whole turns go: no answer is left without the question it answered.
    kept = [n for n in range(1, 7) if f"Answer number {n}" in text]
    assert all(f"Question number {n}:" in text for n in kept)


def test_a_conversations_instructions_follow_the_system_prompt_and_are_never_dropped(
    offline_small_engine,
):
    engine = offline_small_engine
    instructions = {"role": "system", "content": "Answer like a pirate."}
    ids = engine.prompt_ids([instructions, *_conversation(turns=6)], max_new_tokens=50)
    text = engine.tokenizer.decode(ids)
    assert len(ids) <= engine.context_length - 50
    assert text.startswith(
        f"<|im_start|>system\n{SYSTEM_PROMPT}\n\nAnswer like a pirate.<|im_end|>"
    )
    assert "Question number 1:" not in text
    assert text.endswith("The newest question.<|im_end|>\n<|im_start|>assistant\n")


def test_a_history_that_fits_is_kept_whole(offline_small_engine):
    messages = _conversation(turns=1)
    text = offline_small_engine.tokenizer.decode(offline_small_engine.prompt_ids(messages, 20))
    assert "Question number 1:" in text
    assert "Answer number 1:" in text


def test_a_newest_message_too_long_for_the_context_loses_its_beginning(offline_small_engine):
    engine = offline_small_engine
    content = "BEGINNING " + " ".join(f"w{n}" for n in range(400)) + " THE END"
    ids = engine.prompt_ids([{"role": "user", "content": content}], max_new_tokens=50)
    text = engine.tokenizer.decode(ids)
    # As much of the message as fits, and no more.
    assert engine.context_length - 50 - 5 <= len(ids) <= engine.context_length - 50
    assert text.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>")
    assert "THE END<|im_end|>\n<|im_start|>assistant\n" in text
    assert "BEGINNING" not in text


def test_a_conversation_must_end_with_the_users_message(real_engine):
    with pytest.raises(ValueError, match="newest message"):
        real_engine.prompt_ids([{"role": "assistant", "content": "Hi"}], 16)
    with pytest.raises(ValueError, match="role"):
        real_engine.prompt_ids(
            [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Obey me"}], 16
        )
    # Instructions alone are no conversation.
    with pytest.raises(ValueError, match="at least one message"):
        real_engine.prompt_ids([{"role": "system", "content": "Obey me"}], 16)


# --- Sampling parameters --------------------------------------------------------------------


def test_sampling_defaults_are_greedy_with_the_configured_answer_length(settings):
    settings.LLM_MAX_NEW_TOKENS = 300
    params = SamplingParams.from_request({})
    assert params == SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=300)
    assert params.greedy


def test_sampling_parameters_within_bounds_are_accepted():
    params = SamplingParams.from_request(
        {"temperature": 2, "top_p": 0.5, "max_new_tokens": 7, "ignore_eos": True}
    )
    assert params.temperature == 2.0
    assert isinstance(params.temperature, float)
    assert (params.top_p, params.max_new_tokens, params.ignore_eos) == (0.5, 7, True)
    assert not params.greedy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"temperature": -0.1}, "temperature must be between 0 and 2"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"temperature": True}, "temperature must be a number"),
        ({"top_p": 0}, "top_p must be greater than 0"),
        ({"top_p": 1.5}, "top_p must be greater than 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between 1 and 512"),
        ({"max_new_tokens": 513}, "max_new_tokens must be between 1 and 512"),
        ({"max_new_tokens": 5.5}, "max_new_tokens must be a whole number"),
        ({"max_new_tokens": "10"}, "max_new_tokens must be a whole number"),
        ({"ignore_eos": "yes"}, "ignore_eos must be true or false"),
        ({"temprature": 0.5}, "Unknown sampling parameter 'temprature'"),
    ],
)
def test_sampling_parameters_out_of_bounds_are_refused_with_a_sentence(settings, data, message):
    settings.LLM_MAX_NEW_TOKENS = 512
    with pytest.raises(ValueError, match=message):
        SamplingParams.from_request(data)


def test_sampling_parameters_must_be_an_object():
    with pytest.raises(ValueError, match="JSON object"):
        SamplingParams.from_request(["temperature", 1])


# --- prepare_model ----------------------------------------------------------------------------


def test_prepare_model_on_a_ready_directory_loads_nothing(prepared_model_dir, monkeypatch):
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError("prepare_model loaded a model for a directory that was ready")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    out = io.StringIO()
    call_command("prepare_model", stdout=out)
    assert "is ready" in out.getvalue()


def test_prepare_model_without_the_package_says_how_to_install_it(settings, tmp_path, monkeypatch):
    settings.LLM_MODEL = tmp_path / "model"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(CommandError, match="make run"):
        call_command("prepare_model")
    assert not (tmp_path / "model").exists()


def test_an_interrupted_conversion_leaves_nothing_half_made(settings, tmp_path, monkeypatch):
    settings.LLM_MODEL = tmp_path / "model"

    def interrupted(gguf_file, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_model, "_convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_command("prepare_model")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_prepare_model_refuses_to_fill_a_directory_that_holds_something_else(settings, tmp_path):
    settings.LLM_MODEL = tmp_path
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(CommandError, match="not a complete model directory"):
        call_command("prepare_model")


def test_int8_is_ignored_with_a_warning_on_a_gpu(caplog):
    engine = Engine.__new__(Engine)
    engine.device = torch.device("cuda")
    engine.model_name = "some-model"
    engine.model = None  # never touched: nothing is quantised on a GPU
    with caplog.at_level("WARNING", logger="chat.inference.engine"):
        assert engine._quantize("int8") == ""
    assert "CPU only" in caplog.text
