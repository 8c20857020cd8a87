"""Every causal-LM family: tiny random-weight models built from their configs (nothing is
downloaded), with the default model's tokenizer, stream through the real worker and socket.

Their output is noise; what is tested is that the stack holds for each architecture: the
engine loads it, the scheduler's batch gives the same greedy answers as transformers' own
``generate()`` (so its cache and masks suit that family), and a chat reaches ``chat.done``.
Chat-tuned families keep the tokenizer's chat template; base families (as base checkpoints
ship) have none and get the plain transcript format.
"""

import logging

import pytest
import torch
from django.conf import settings
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from chat.inference.engine import Engine
from chat.inference.params import SamplingParams
from chat.inference.scheduler import Scheduler
from chat.models import Message
from tests.support.inference import running_worker
from tests.support.websockets import send, until_done

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
# Each family's own names for its sizes; context lengths are short to keep the tests fast.
FAMILIES = {
    "llama": {**SMALL, "intermediate_size": 128, "num_key_value_heads": 2,
              "max_position_embeddings": 512},
    "mistral": {**SMALL, "intermediate_size": 128, "num_key_value_heads": 2,
                "max_position_embeddings": 512},
    "qwen2": {**SMALL, "intermediate_size": 128, "num_key_value_heads": 2,
              "max_position_embeddings": 512},
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 512},
    "gpt_neox": {**SMALL, "intermediate_size": 128, "max_position_embeddings": 512},
    "bloom": {"hidden_size": 64, "n_layer": 2, "n_head": 4},
    "gptj": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 512, "rotary_dim": 8},
    "falcon": {**SMALL, "max_position_embeddings": 512},
}  # fmt: skip
CHAT_TUNED = {"llama", "mistral", "qwen2"}
ANSWER_TOKENS = 6


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, prepared_model_dir):
    """Builds each family's tiny model on first use: {family: its directory}."""
    built = {}

    def build(family):
        if family not in built:
            tokenizer = AutoTokenizer.from_pretrained(prepared_model_dir, local_files_only=True)
            if family not in CHAT_TUNED:
                tokenizer.chat_template = None
            config = AutoConfig.for_model(
                family,
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.eos_token_id,
                **FAMILIES[family],
            )
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(config)
            directory = tmp_path_factory.mktemp("models") / f"tiny-{family}"
            model.save_pretrained(directory)
            tokenizer.save_pretrained(directory)
            built[family] = directory
        return built[family]

    return build


def engine_of(directory) -> Engine:
    return Engine(
        directory, dtype="float32", system_prompt="Be brief.", max_new_tokens=ANSWER_TOKENS
    )


def scheduler_of(engine) -> Scheduler:
    return Scheduler(engine, max_active=4, max_batch_tokens=4096, max_queue=4)


def generate_alone(engine, prompt_ids) -> list[int]:
    with torch.inference_mode():
        output = engine.model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=ANSWER_TOKENS,
            min_new_tokens=ANSWER_TOKENS,
            do_sample=False,
        )
    return output[0, len(prompt_ids) :].tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_batch_answers_as_generate_does_for_every_family(family, tiny_models):
    engine = engine_of(tiny_models(family))
    assert engine.transcript is (family not in CHAT_TUNED)
    prompts = [
        engine.prompt_ids([{"role": "user", "content": "Hi"}], ANSWER_TOKENS),
        engine.prompt_ids(
            [{"role": "user", "content": "A longer question, so that this row is not padded."}],
            ANSWER_TOKENS,
        ),
    ]
    scheduler = scheduler_of(engine)
    # Stop strings would end a noise answer early; compare whole answers token for token.
    params = SamplingParams(max_new_tokens=ANSWER_TOKENS, ignore_eos=True)
    for number, prompt in enumerate(prompts):
        scheduler.submit(f"r{number}", prompt, params)
    texts = {"r0": "", "r1": ""}
    while scheduler.has_work():
        for event in scheduler.step():
            texts[event.request_id] += event.text

    for number, prompt in enumerate(prompts):
        expected = engine.tokenizer.decode(generate_alone(engine, prompt), skip_special_tokens=True)
        assert texts[f"r{number}"] == expected, f"{family}, prompt {number}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("family", FAMILIES)
async def test_every_family_streams_a_chat_through_the_worker(family, tiny_models, chat, caplog):
    directory = tiny_models(family)
    async with running_worker(
        f"{family}-worker",
        engine_factory=lambda: engine_of(directory),
        scheduler_factory=scheduler_of,
        timeout=60,
    ):
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            await send(chat, "Hello there", model=directory.name)
            frames = await until_done(chat, timeout=30)

    assert frames[0]["type"] == "chat.started"
    assert frames[0]["model"] == directory.name
    assert frames[-1]["finish_reason"] in {"stop", "length"}
    answer = await Message.objects.aget(pk=frames[-1]["message"])
    assert answer.status == "complete"
    assert answer.model_name == directory.name
    assert answer.content == "".join(f["text"] for f in frames if f["type"] == "chat.delta")
    assert "never retrieved" not in caplog.text


def test_a_base_model_gets_the_plain_transcript_format(tiny_models):
    engine = engine_of(tiny_models("bloom"))
    history = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]

    text = engine.tokenizer.decode(engine.prompt_ids(history, ANSWER_TOKENS))

    assert text.endswith(
        "Be brief.\n\nUser: What is the capital of France?\n\nAssistant: Paris.\n\n"
        "User: And of Italy?\n\nAssistant:"
    )
    assert engine.stop_strings == ("\nUser:", "\nAssistant:")


def test_llm_chat_template_replaces_the_models_own(tiny_models, tmp_path):
    template = tmp_path / "template.jinja"
    template.write_text(
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant]"
    )
    engine = Engine(
        tiny_models("bloom"), dtype="float32", system_prompt="Be brief.", chat_template=template
    )

    text = engine.tokenizer.decode(
        engine.prompt_ids([{"role": "user", "content": "Hi"}], ANSWER_TOKENS)
    )

    assert text == "[system] Be brief.\n[user] Hi\n[assistant]"
    assert not engine.transcript


def test_an_unreadable_chat_template_is_a_clear_error(tiny_models, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=r"LLM_CHAT_TEMPLATE=.* cannot be read"):
        Engine(tiny_models("gpt2"), chat_template=tmp_path / "missing.jinja")


def test_the_default_model_keeps_its_chat_template(real_engine):
    assert not real_engine.transcript
    assert real_engine.stop_strings == ()
    assert settings.LLM_CHAT_TEMPLATE is None
