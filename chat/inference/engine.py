"""The language model in memory: loading it offline, and prompts.

The engine is the only place that knows how a conversation becomes token ids: through the
model's chat template (or LLM_CHAT_TEMPLATE's), or, for a model without one (a base
checkpoint), the plain transcript format below. It loads a
local Hugging Face causal-LM directory with ``local_files_only=True`` and with the hub's
offline switches set before transformers is imported, so no code path here can reach the
network; it never runs code shipped with a model (``trust_remote_code`` stays off).
"""

import logging
import os
from pathlib import Path

import torch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# transformers is imported lazily, after these: it and huggingface_hub read them at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

logger = logging.getLogger(__name__)

ROLES = ("user", "assistant")
# End-of-turn markers of common chat templates. A model whose tokenizer's eos_token is the
# end of the whole document (not of one answer) still stops at the end of its turn.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
# Room an answer always leaves for the question and the turns before it, besides the system
# prompt: a quarter of the context. A model with a short context (512 tokens) then still
# takes a question of a few paragraphs, and its answers are shortened to fit instead.
QUESTION_SHARE_OF_CONTEXT = 0.25

# Where model configs of different families keep their context length, in that order.
CONTEXT_LENGTH_FIELDS = ("max_position_embeddings", "n_positions", "seq_length", "n_ctx")
# Models with ALiBi position biases (BLOOM) have no fixed limit; they were trained with 2048
# tokens, and answer worse far beyond what they were trained with.
ALIBI_CONTEXT = 2048

# The plain transcript format, for models without a chat template (base checkpoints of any
# family): the system prompt as a paragraph, then each turn as a paragraph that starts with
# who speaks, ending with an open "Assistant:" for the model to continue:
#
#     You are a helpful assistant.
#
#     User: What is the capital of France?
#
#     Assistant: Paris.
#
#     User: And of Italy?
#
#     Assistant:
#
# A base model carries the transcript on by writing the next "User:" turn itself; the answer
# ends where the model starts a new turn (TRANSCRIPT_STOP_STRINGS), which is never shown.
TRANSCRIPT_SPEAKERS = {"user": "User", "assistant": "Assistant", "system": ""}
TRANSCRIPT_STOP_STRINGS = ("\nUser:", "\nAssistant:")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX-512 BF16; Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def _skip_cudnn_attention() -> None:
    """Leave cuDNN out of PyTorch's scaled-dot-product attention in this process.

    On Hopper GPUs PyTorch may pick cuDNN's attention for bf16 with a mask. cuDNN builds an
    execution plan for each new shape, and a decode step's keys grow by one token every
    step, so every step pays for a new plan: on an H200 the engine decoded a 1.2B Llama at
    about 60 ms a token this way, against about 16 ms with the flash and memory-efficient
    kernels, which handle any length with one kernel (docs/performance.md, "Sizing a GPU server")."""
    torch.backends.cuda.enable_cudnn_sdp(False)


class Engine:
    """A causal language model and its tokenizer, ready for batched generation."""

    @classmethod
    def from_settings(cls) -> "Engine":
        return cls(
            Path(settings.LLM_MODEL),
            chat_template=settings.LLM_CHAT_TEMPLATE,
            device=settings.LLM_DEVICE,
            dtype=settings.LLM_DTYPE,
            system_prompt=settings.LLM_SYSTEM_PROMPT,
            max_context=settings.LLM_MAX_CONTEXT,
            max_new_tokens=settings.LLM_MAX_NEW_TOKENS,
            quantize=getattr(settings, "LLM_QUANTIZE", ""),
        )

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "",
        dtype: str = "",
        system_prompt: str = "",
        max_context: int = 0,
        max_new_tokens: int = 0,
        quantize: str = "",
        chat_template: Path | None = None,
    ):
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ImproperlyConfigured(
                f"No model at {model_dir}: run `python manage.py prepare_model` for the "
                "default model, or set LLM_MODEL to a local Hugging Face model directory."
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = model_dir
        self.model_name = model_dir.name
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype:
            self.dtype = getattr(torch, dtype)
        elif self.device.type == "cuda" or native_bf16_cpu():
            # bf16 halves the bytes of weights each step reads. GPUs, and CPUs with AMX or
            # AVX-512 BF16, compute it natively: 1.7-1.9x the throughput of fp32 at 8-16
            # users here, same answers on the quality set (docs/performance.md).
            self.dtype = torch.bfloat16
        else:
            # Other CPUs emulate bf16 and run it slower than fp32.
            self.dtype = torch.float32
        self.system_prompt = system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False
        )
        # A second instance for prompts: the worker encodes a newcomer's prompt in a thread
        # of its own while the model's thread decodes text, and a fast tokenizer must not be
        # used by two threads at once (its settings are changed in place while encoding).
        self.prompt_tokenizer = AutoTokenizer.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False
        )
        if chat_template is not None:
            template = _read_template(Path(chat_template))
            self.tokenizer.chat_template = self.prompt_tokenizer.chat_template = template
        # Without a chat template, prompts are plain transcripts ending at the next turn.
        self.transcript = not self.tokenizer.chat_template
        self.stop_strings = TRANSCRIPT_STOP_STRINGS if self.transcript else ()
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False, dtype=self.dtype
        )
        self.model.to(self.device)
        self.model.eval()
        if self.device.type == "cuda":
            _skip_cudnn_attention()
        self.quantize = self._quantize(quantize)
        self.context_length = self._context_length(max_context)
        self.stop_token_ids = self._stop_token_ids()
        self.max_new_tokens = self._answer_limit(max_new_tokens)
        logger.info(
            "Loaded model %s on %s (%s%s, %s), context %d tokens, answers up to %d tokens",
            self.model_name,
            self.device,
            str(self.dtype).removeprefix("torch."),
            ", int8 linear layers" if self.quantize else "",
            "plain transcript format" if self.transcript else "chat template",
            self.context_length,
            self.max_new_tokens,
        )

    def _quantize(self, quantize: str) -> str:
        """Dynamic int8 quantisation of the linear layers, on CPU only; the mode applied.

        The weights of each ``nn.Linear`` become int8 with one scale per output row, and
        activations are quantised on the fly for each matrix product: a decode step on a CPU
        is bound by reading weights, so a quarter of the bytes makes it about twice as fast.
        The embeddings stay as they are: they are looked up, not multiplied. The output layer
        (``lm_head``) stays too: with tied weights it shares the embedding matrix, and its
        scores pick every token. Quantising it as well was measured no faster for one
        request and slower for 16 (its dynamic activation quantisation costs more there).
        """
        if not quantize:
            return ""
        if quantize != "int8":
            raise ImproperlyConfigured(f"Unknown quantisation {quantize!r}: use int8.")
        if self.device.type != "cpu":
            logger.warning(
                "LLM_QUANTIZE=int8 applies on CPU only; running %s unquantised on %s.",
                self.model_name,
                self.device,
            )
            return ""
        import warnings

        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        output = self.model.get_output_embeddings()
        layers = {
            name
            for name, module in self.model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output
        }
        if self.dtype != torch.float32:
            # The int8 kernels take float32 activations; the rest of the model follows.
            self.model.float()
            self.dtype = torch.float32
        with warnings.catch_warnings():
            # torch.ao.quantization announces its move to torchao, which is not installed
            # here; the dynamic int8 kernels it uses are still part of torch.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            quantize_dynamic(
                self.model,
                dict.fromkeys(layers, per_channel_dynamic_qconfig),
                dtype=torch.qint8,
                inplace=True,
            )
        return "int8"

    def _context_length(self, max_context: int) -> int:
        config = self.model.config
        own = next(
            (
                value
                for name in CONTEXT_LENGTH_FIELDS
                if isinstance(value := getattr(config, name, None), int) and value > 0
            ),
            0,
        )
        if not own and _uses_alibi(config):
            own = ALIBI_CONTEXT
            if not max_context:
                logger.warning(
                    "The model in %s has no fixed context length (ALiBi); using %d tokens, "
                    "the length models of its kind were trained with. Set LLM_MAX_CONTEXT "
                    "to choose another.",
                    self.model_dir,
                    ALIBI_CONTEXT,
                )
        if not own:
            # Tokenizers without a known limit report a huge sentinel value.
            own = self.tokenizer.model_max_length if self.tokenizer.model_max_length < 10**7 else 0
        if max_context and own and max_context > own:
            logger.warning(
                "LLM_MAX_CONTEXT=%d exceeds the model's context of %d tokens; using %d.",
                max_context,
                own,
                own,
            )
            return own
        if not (max_context or own):
            raise ImproperlyConfigured(
                f"The model in {self.model_dir} does not say how long its context is; "
                "set LLM_MAX_CONTEXT."
            )
        return max_context or own

    def _answer_limit(self, wanted: int) -> int:
        """The longest answer, in tokens: ``wanted`` (LLM_MAX_NEW_TOKENS; 0 for no limit of
        its own) where the context has room for it besides the system prompt and
        QUESTION_SHARE_OF_CONTEXT, else what does fit, with a warning."""
        system_prompt = len(self._encode([{"role": "user", "content": ""}]))
        fits = (
            self.context_length
            - system_prompt
            - int(self.context_length * QUESTION_SHARE_OF_CONTEXT)
        )
        if fits < 1:
            raise ImproperlyConfigured(
                f"The system prompt takes {system_prompt} tokens with the chat template, which "
                f"leaves no room for a question and an answer in the context of "
                f"{self.context_length} tokens of {self.model_name}; shorten LLM_SYSTEM_PROMPT "
                "or choose a model with a longer context."
            )
        if not wanted:
            return fits
        if wanted > fits:
            logger.warning(
                "LLM_MAX_NEW_TOKENS=%d does not fit in the context of %s (%d tokens) with the "
                "system prompt and a question; answers are at most %d tokens.",
                wanted,
                self.model_name,
                self.context_length,
                fits,
            )
            return fits
        return wanted

    def _stop_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        for source in (self.model.generation_config, self.model.config, self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(v for v in value if isinstance(v, int))
        vocabulary = self.tokenizer.get_vocab()
        special = set(self.tokenizer.all_special_tokens)
        template = self.tokenizer.chat_template or ""
        for token in END_OF_TURN_TOKENS:
            if token in vocabulary and (token in special or token in template):
                ids.add(vocabulary[token])
        if not ids:
            raise ImproperlyConfigured(
                f"The model in {self.model_dir} defines no end-of-sequence token, so its "
                "answers would never end; choose another LLM_MODEL."
            )
        return frozenset(ids)

    # --- Prompts ------------------------------------------------------------------------

    def prompt_ids(self, messages: list[dict], max_new_tokens: int) -> list[int]:
        """Token ids of the chat so far, shortened to leave room for ``max_new_tokens``.

        ``messages`` are the conversation's user and assistant turns, oldest first, ending
        with the user's newest message; a first message with the role "system" holds the
        conversation's own instructions, which follow the site's system prompt. When they do
        not fit, whole turns are dropped from the start (the system prompt, the instructions
        and the newest message always stay); when the newest message alone does not fit,
        its beginning is cut off.
        """
        instructions = ""
        if messages and messages[0].get("role") == "system":
            instructions = messages[0].get("content")
            if not isinstance(instructions, str):
                raise ValueError("The instructions must be text.")
            messages = messages[1:]
        _check_messages(messages)
        budget = self.context_length - max_new_tokens
        if budget <= 0:
            raise ValueError(
                f"max_new_tokens ({max_new_tokens}) leaves no room for the prompt in a context "
                f"of {self.context_length} tokens."
            )
        starts = _turn_starts(messages)
        # Dropping more turns never makes the prompt longer, so bisect over how many to drop:
        # a few renders instead of one per turn for long conversations.
        low, high = 0, len(starts) - 1
        if len(self._encode(messages[starts[high] :], instructions)) > budget:
            return self._truncated_newest(messages[-1], budget, instructions)
        while low < high:
            middle = (low + high) // 2
            if len(self._encode(messages[starts[middle] :], instructions)) <= budget:
                high = middle
            else:
                low = middle + 1
        return self._encode(messages[starts[low] :], instructions)

    def _encode(self, messages: list[dict], instructions: str = "") -> list[int]:
        system = "\n\n".join(part for part in (self.system_prompt, instructions) if part)
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        if self.transcript:
            # The tokenizer's own special tokens (a BOS, for many families) start the text.
            return self.prompt_tokenizer(transcript(messages), add_special_tokens=True)["input_ids"]
        text = self.prompt_tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        # The rendered template already holds every special token the model expects.
        return self.prompt_tokenizer(text, add_special_tokens=False)["input_ids"]

    def _truncated_newest(self, message: dict, budget: int, instructions: str) -> list[int]:
        frame = len(self._encode([{**message, "content": ""}], instructions))
        if frame >= budget:
            raise ValueError(
                f"The system prompt and instructions alone ({frame} tokens with the chat "
                f"template) do not fit in a context of {self.context_length} tokens with room "
                "for the answer; shorten LLM_SYSTEM_PROMPT or the conversation's "
                "instructions, or lower max_new_tokens."
            )
        content_ids = self.prompt_tokenizer(message["content"], add_special_tokens=False)[
            "input_ids"
        ]
        keep = budget - frame
        while True:
            content = self.prompt_tokenizer.decode(content_ids[-keep:]) if keep > 0 else ""
            ids = self._encode([{**message, "content": content}], instructions)
            # Tokens can merge differently at the new start; shrink until it really fits.
            if len(ids) <= budget:
                return ids
            keep -= len(ids) - budget


def _uses_alibi(config) -> bool:
    return config.model_type == "bloom" or bool(getattr(config, "alibi", False))


def transcript(messages: list[dict]) -> str:
    """``messages`` in the plain transcript format (see TRANSCRIPT_SPEAKERS), ending with
    the open turn of the assistant."""
    paragraphs = []
    for message in messages:
        speaker = TRANSCRIPT_SPEAKERS[message["role"]]
        paragraphs.append(f"{speaker}: {message['content']}" if speaker else message["content"])
    paragraphs.append("Assistant:")
    return "\n\n".join(paragraphs)


def _read_template(path: Path) -> str:
    try:
        template = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ImproperlyConfigured(
            f"LLM_CHAT_TEMPLATE={path} cannot be read ({error}); name a UTF-8 Jinja template "
            "file, or leave it empty to use the model's own template."
        ) from None
    if not template.strip():
        raise ImproperlyConfigured(
            f"LLM_CHAT_TEMPLATE={path} is empty; name a Jinja chat template file, or leave it "
            "empty to use the model's own template."
        )
    return template


def _check_messages(messages: list[dict]) -> None:
    if not messages:
        raise ValueError("A prompt needs at least one message.")
    for message in messages:
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError("Each message needs a role of 'user' or 'assistant' and text content.")
    if messages[-1]["role"] != "user":
        raise ValueError("The newest message must be the user's.")


def _turn_starts(messages: list[dict]) -> list[int]:
    """Indexes where a turn (a user message and the answers after it) begins."""
    starts = [i for i, message in enumerate(messages) if message["role"] == "user"]
    if starts[0] != 0:
        # Answers before the first user message belong to no turn; they go first.
        starts.insert(0, 0)
    return starts
