"""Sampling parameters of one answer and their bounds, in one place.

The chat socket checks a browser's ``params`` with ``SamplingParams.from_frame()`` before
anything is stored; the worker reads the ``params`` of ``inference.generate`` with
``SamplingParams.from_request()`` and caps their answer length to what its model's context
allows (``capped()``). Both readers raise ValueError with a sentence naming the field and its
bounds. No torch here: the web process imports this without loading a model.
"""

from dataclasses import dataclass, field, fields, replace

from django.conf import settings

# Sampling bounds: above 2 the default model produces noise, not answers.
MAX_TEMPERATURE = 2.0
# What a browser may set; ignore_eos is for benchmarks, which talk to the worker directly.
FRAME_FIELDS = ("max_new_tokens", "temperature", "top_p")
# A refused value is quoted in the sentence, cut to this length.
SHOWN_VALUE_MAX = 40


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_MAX else text[: SHOWN_VALUE_MAX - 1] + "…"


@dataclass(frozen=True)
class SamplingParams:
    """How one answer is generated. Temperature 0 means greedy (deterministic) decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = field(default_factory=lambda: settings.LLM_MAX_NEW_TOKENS)
    # For benchmarks only: generate exactly max_new_tokens, ignoring end-of-answer tokens.
    ignore_eos: bool = False

    def __post_init__(self):
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {_shown(value)}.")
            try:
                # Frozen: normalise ints to floats through object.__setattr__.
                object.__setattr__(self, name, float(value))
            except OverflowError:  # an integer too large for a float
                raise ValueError(f"{name} must be a number, not {_shown(value)}.") from None
        if not 0.0 <= self.temperature <= MAX_TEMPERATURE:
            raise ValueError(
                f"temperature must be between 0 and {MAX_TEMPERATURE:g}, not {self.temperature:g}."
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be greater than 0 and at most 1, not {self.top_p:g}.")
        limit = settings.LLM_MAX_NEW_TOKENS
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ValueError(
                f"max_new_tokens must be a whole number, not {_shown(self.max_new_tokens)}."
            )
        if not 1 <= self.max_new_tokens <= limit:
            raise ValueError(
                f"max_new_tokens must be between 1 and {limit}, not {_shown(self.max_new_tokens)}."
            )
        if not isinstance(self.ignore_eos, bool):
            raise ValueError(f"ignore_eos must be true or false, not {_shown(self.ignore_eos)}.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def capped(self, max_new_tokens: int) -> "SamplingParams":
        """These parameters with answers at most ``max_new_tokens`` long: what the model's
        context allows (``Engine.max_new_tokens``) may be less than LLM_MAX_NEW_TOKENS."""
        if self.max_new_tokens <= max_new_tokens:
            return self
        return replace(self, max_new_tokens=max_new_tokens)

    @classmethod
    def from_request(cls, data: dict) -> "SamplingParams":
        """Parameters from a request's JSON object; missing or null fields take defaults."""
        if not isinstance(data, dict):
            raise ValueError("Sampling parameters must be a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown sampling parameter {_shown(unknown[0])}; use {', '.join(sorted(known))}."
            )
        return cls(**{name: value for name, value in data.items() if value is not None})

    @classmethod
    def from_frame(cls, data) -> dict:
        """A browser's ``params``, checked against the bounds; returns the fields it set,
        normalised (a dict, so that it travels to the worker as it is and the worker's own
        defaults fill the rest)."""
        if not isinstance(data, dict) or not set(data) <= set(FRAME_FIELDS):
            raise ValueError(f"`params` may only hold {', '.join(FRAME_FIELDS)}.")
        checked = cls.from_request(data)
        return {name: getattr(checked, name) for name, value in data.items() if value is not None}
