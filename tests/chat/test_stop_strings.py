"""Stop strings that span several tokens: held back while they may still be one, never shown,
and released when they turn out not to be (with the default model's real tokenizer)."""

import pytest
from transformers import AutoTokenizer

from chat.inference.engine import TRANSCRIPT_STOP_STRINGS
from chat.inference.params import SamplingParams
from chat.inference.scheduler import IncrementalDecoder, _Request, _Sequence


@pytest.fixture(scope="module")
def tokenizer(prepared_model_dir):
    return AutoTokenizer.from_pretrained(prepared_model_dir, local_files_only=True)


def stream(tokenizer, text: str, *, max_new_tokens=100, ignore_eos=False):
    """Feeds ``text``'s tokens one at a time as the scheduler does; returns the pieces each
    event would carry and how the answer ended."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3  # several tokens, so that the stop string spans more than one
    request = _Request(
        "r", [1], SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=ignore_eos), 100
    )
    sequence = _Sequence(request, IncrementalDecoder(tokenizer), TRANSCRIPT_STOP_STRINGS)
    pieces = []
    for token in ids:
        sequence.take(sequence.decoder.push(token))
        if sequence.finish_reason:
            break
        if sequence.text:
            pieces.append(sequence.event().text)
    else:
        sequence.finish_reason = "length"
    pieces.append(sequence.event().text)
    return pieces, sequence.finish_reason


def test_an_answer_ends_at_the_next_turn_and_the_marker_is_never_shown(tokenizer):
    pieces, reason = stream(tokenizer, "Paris is the capital.\nUser: And Rome?")

    assert reason == "stop"
    assert "".join(pieces) == "Paris is the capital."
    assert not any("User" in piece for piece in pieces)


def test_text_that_only_starts_like_a_marker_is_released_in_the_end(tokenizer):
    pieces, reason = stream(tokenizer, "Lines:\nUse the stairs.\nAssistants help.")

    assert reason == "length"
    assert "".join(pieces) == "Lines:\nUse the stairs.\nAssistants help."


def test_held_back_text_is_shown_once_the_marker_cannot_follow(tokenizer):
    pieces, _ = stream(tokenizer, "One\nUsers two three four five six")

    # "\nUs" waits; by "ers" it cannot be "\nUser:" any more and goes out before the end.
    assert "".join(pieces[:-1]).startswith("One\nUsers")


def test_benchmarks_that_ignore_the_end_ignore_stop_strings_too(tokenizer):
    pieces, reason = stream(tokenizer, "A.\nUser: B", ignore_eos=True)

    assert reason == "length"
    assert "".join(pieces) == "A.\nUser: B"
