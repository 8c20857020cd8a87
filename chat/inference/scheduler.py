"""Continuous batching: every decode step advances all active answers in one forward pass.

Requests may arrive at any time. Each ``step()`` first admits waiting requests that fit
(``max_active`` sequences, ``max_batch_tokens`` of prompt plus answer), runs their prompts
through the model together (prefill: left-padded, grouped by length, one forward pass per
group) and merges their keys and values into the running batch; then it runs one decode
step for every active sequence together. A second user therefore never waits for the first
one's answer to end, only for one prefill, and people arriving together share it.

Why our own batching rather than transformers' continuous batching
(``generate_batch`` / ``ContinuousBatchingManager``): that manager runs its own background
thread and request queue, so it cannot be driven one step at a time from our worker thread
as the channel-layer loop needs; per-request greedy versus sampled decoding is not part of
its request API; and its interface has changed between releases. Here, the model's own
``forward`` is called with a small KV store of our own (``_BatchCache``), which only needs
the stable contract of causal LMs: ``cache.update(keys, values, layer_idx)`` returning the
keys and values to attend to, explicit ``position_ids``, and a prepared 4-D attention mask.

The batch keeps one tensor per layer with all sequences right-aligned: a new token goes into
the same column for every row, so a decode step writes one column in place and attends to a
view, without re-concatenating the cache as ``DynamicCache`` does on each token. Shorter
sequences are left-padded; the mask hides the padding and each row's ``position_ids`` count
only its real tokens. Joining the batch and leaving it copy the cache once, which happens
once per request, not once per token.

Limits of this design: one mask serves every layer, so models with sliding-window layers
attend to their whole context (identical answers while it is shorter than the window);
memory follows the longest sequence times the number of rows, which max_batch_tokens (a sum
of each request's prompt plus answer) does not bound on its own; and a prefill runs in
one forward pass, during which the other answers wait.
"""

import collections
import inspect
import logging
import threading
from dataclasses import dataclass

import torch
from django.conf import settings

from chat.inference.engine import Engine
from chat.inference.params import SamplingParams

logger = logging.getLogger(__name__)

# Prompts prefilled together in one forward pass hold at most this many tokens, padding
# included: enough to take a crowd arriving at once in a pass or two, small enough that the
# pass's activations stay a few hundred MB for a large model.
PREFILL_GROUP_TOKENS = 4096
# The cache grows by at least this many columns at a time (or a quarter of its length), so
# most decode steps write in place instead of copying the whole cache to a bigger tensor.
GROWTH_COLUMNS = 128
REPLACEMENT_CHARACTER = "\ufffd"


class QueueFull(Exception):
    """As many requests are waiting as the queue allows; the caller should say "busy"."""


@dataclass
class StepEvent:
    request_id: str
    text: str
    finished: bool
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class IncrementalDecoder:
    """Turns one token at a time into text, holding back incomplete characters.

    A multi-byte character (an emoji, often an accented letter) can be split over several
    tokens; decoding the first alone gives U+FFFD. Text is released only once it no longer
    ends in U+FFFD. Only the last few tokens are decoded each time: ``prefix`` marks tokens
    already released but kept as context, because tokenizers decode a token differently at
    the start of a sequence (leading spaces).
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) > len(before) and not after.endswith(REPLACEMENT_CHARACTER):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """The text still held back when the answer ends, without a cut-off character."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return after[len(before) :].rstrip(REPLACEMENT_CHARACTER)


@dataclass
class _Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    max_new_tokens: int

    @property
    def reserved_tokens(self) -> int:
        return len(self.prompt_ids) + self.max_new_tokens


@dataclass
class _Sequence:
    request: _Request
    decoder: IncrementalDecoder
    # Strings that end the answer where they appear (the next turn of a plain transcript);
    # they are never part of it, so text that could be the start of one is held back.
    stop_strings: tuple[str, ...] = ()
    last_token: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    # Text decoded since the last event, and text held back as the possible start of a stop
    # string.
    text: str = ""
    held: str = ""
    stopped_by_string: bool = False

    def take(self, text: str) -> None:
        """Add decoded ``text``; ends the answer ("stop") at the first stop string."""
        if not self.stop_strings or self.request.params.ignore_eos:
            self.text += text
            return
        held = self.held + text
        found = [held.find(stop) for stop in self.stop_strings if stop in held]
        if found:
            self.text += held[: min(found)]
            self.held = ""
            self.stopped_by_string = True
            self.finish_reason = "stop"
            return
        keep = _open_stop_length(held, self.stop_strings)
        self.text += held[: len(held) - keep]
        self.held = held[len(held) - keep :]

    def event(self) -> StepEvent:
        if self.finish_reason in {"stop", "length"} and not self.stopped_by_string:
            self.take(self.decoder.flush())
            if not self.stopped_by_string:
                # What was held back turned out not to be a stop string: it is answer text.
                self.text += self.held
            self.held = ""
        text, self.text = self.text, ""
        return _event(self.request, text, self.finish_reason, self.completion_tokens)


def _open_stop_length(text: str, stop_strings: tuple[str, ...]) -> int:
    """The length of the longest end of ``text`` that begins some stop string."""
    longest = 0
    for stop in stop_strings:
        for length in range(min(len(stop) - 1, len(text)), longest, -1):
            if stop.startswith(text[-length:]):
                longest = length
                break
    return longest


class _BatchCache:
    """Keys and values of the sequences decoded together, right-aligned, one tensor per layer.

    Duck-types the part of transformers' ``Cache`` that attention layers use: ``update``
    stores this forward pass's keys and values in columns ``length ..`` and returns views of
    everything up to them. ``advance`` commits those columns once the whole pass is done.
    """

    def __init__(self, rows: int, device: torch.device, mask_dtype: torch.dtype):
        self.rows = rows
        self.device = device
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.length = 0
        # Left-padding columns of each row, and the additive mask that hides them.
        self.padding = torch.zeros(rows, dtype=torch.long, device=device)
        self.mask = torch.zeros(rows, 0, dtype=mask_dtype, device=device)

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def reserve(self, columns: int) -> None:
        """Room for ``columns`` more tokens, before a forward pass writes them."""
        needed = self.length + columns
        if needed <= self.capacity:
            return
        capacity = needed + max(GROWTH_COLUMNS, needed // 4)
        self.mask = _grown(self.mask, 1, capacity, self.length)
        self.keys = [_grown(t, 2, capacity, self.length) for t in self.keys]
        self.values = [_grown(t, 2, capacity, self.length) for t in self.values]

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        end = self.length + key_states.shape[2]
        if layer_idx == len(self.keys):
            shape = (*key_states.shape[:2], self.capacity, key_states.shape[3])
            self.keys.append(key_states.new_zeros(shape))
            self.values.append(value_states.new_zeros((*shape[:3], value_states.shape[3])))
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[:, :, self.length : end] = key_states
        values[:, :, self.length : end] = value_states
        return keys[:, :, :end], values[:, :, :end]

    def advance(self, columns: int) -> None:
        self.length += columns

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens already stored (Falcon, BLOOM and GPT-J ask before each forward pass)."""
        return self.length

    def decode_mask(self) -> torch.Tensor:
        """Mask for one new token per row: every real column, none of the padding."""
        return self.mask[:, None, None, : self.length + 1]

    def positions(self) -> torch.Tensor:
        return (self.length - self.padding)[:, None]

    @classmethod
    def merged(cls, parts: list["_BatchCache"]) -> "_BatchCache":
        """One batch of the rows of ``parts``, in order, right-aligned to the longest."""
        first = parts[0]
        length = max(part.length for part in parts)
        capacity = length + GROWTH_COLUMNS
        merged = cls(sum(part.rows for part in parts), first.device, first.mask.dtype)
        merged.length = length
        merged.mask = first.mask.new_zeros(merged.rows, capacity)
        merged.mask[:, :length] = torch.finfo(first.mask.dtype).min
        # Zeros, not empty memory: padded columns are masked, but NaN garbage there would
        # still poison the attention sums (0 * NaN is NaN).
        merged.keys = [t.new_zeros(_resized(t, merged.rows, capacity)) for t in first.keys]
        merged.values = [t.new_zeros(_resized(t, merged.rows, capacity)) for t in first.values]
        paddings = []
        row = 0
        for part in parts:
            rows = slice(row, row + part.rows)
            columns = slice(length - part.length, length)
            merged.mask[rows, columns] = part.mask[:, : part.length]
            for target, source in zip(
                merged.keys + merged.values, part.keys + part.values, strict=True
            ):
                target[rows, :, columns] = source[:, :, : part.length]
            paddings.append(part.padding + (length - part.length))
            row += part.rows
        merged.padding = torch.cat(paddings)
        return merged

    def select(self, rows: list[int]) -> "_BatchCache":
        """A batch of only ``rows``, without the columns that are now padding in all of them."""
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        padding = self.padding.index_select(0, index)
        start = int(padding.min()) if rows else self.length
        length = self.length - start
        capacity = length + GROWTH_COLUMNS
        selected = _BatchCache(len(rows), self.device, self.mask.dtype)
        selected.length = length
        selected.padding = padding - start
        selected.mask = self.mask.new_zeros(len(rows), capacity)
        selected.mask[:, :length] = self.mask.index_select(0, index)[:, start : self.length]
        for source, target in ((self.keys, selected.keys), (self.values, selected.values)):
            for tensor in source:
                compact = tensor.new_empty(_resized(tensor, len(rows), capacity))
                compact[:, :, :length] = tensor.index_select(0, index)[:, :, start : self.length]
                target.append(compact)
        return selected


def _alibi_by_column(model) -> None:
    """Let an ALiBi model of the BLOOM kind take our 4-D masks.

    BLOOM builds its position biases from a 2-D padding mask (``build_alibi_tensor``), while
    the batch here hands every model a prepared 4-D mask. ALiBi adds ``slope * key position``
    to each score; a constant added to all of one query's scores does not change its softmax,
    so counting positions from the first column instead of from each row's first real token
    (left padding shifts them by a constant per row) gives the same attention. The base
    model's own ``build_alibi_tensor`` hook is given an all-ones 2-D mask of the key length
    for that; the padding stays hidden by the 4-D mask."""
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    build = getattr(base, "build_alibi_tensor", None)
    if build is None or getattr(build, "by_column", False):
        return

    def by_column(attention_mask, num_heads, dtype):
        if attention_mask.ndim == 4:
            batch, columns = attention_mask.shape[0], attention_mask.shape[-1]
            attention_mask = torch.ones(
                batch, columns, dtype=torch.long, device=attention_mask.device
            )
        return build(attention_mask, num_heads, dtype)

    by_column.by_column = True
    base.build_alibi_tensor = by_column


def _prefill_groups(requests: list[_Request]) -> list[list[_Request]]:
    """``requests`` in groups of similar length whose padded size fits
    PREFILL_GROUP_TOKENS (a prompt longer than that is a group of its own)."""
    groups: list[list[_Request]] = []
    for request in sorted(requests, key=lambda r: len(r.prompt_ids)):
        group = groups[-1] if groups else None
        # Sorted by length: the newcomer is the longest of the group it would join.
        if group and (len(group) + 1) * len(request.prompt_ids) <= PREFILL_GROUP_TOKENS:
            group.append(request)
        else:
            groups.append([request])
    return groups


def _resized(tensor: torch.Tensor, rows: int, columns: int) -> tuple[int, ...]:
    """The shape of a cache tensor with ``rows`` sequences of ``columns`` tokens."""
    _, heads, _, width = tensor.shape
    return (rows, heads, columns, width)


def _grown(tensor: torch.Tensor, dim: int, capacity: int, used: int) -> torch.Tensor:
    shape = list(tensor.shape)
    shape[dim] = capacity
    grown = tensor.new_zeros(shape)
    grown.narrow(dim, 0, used).copy_(tensor.narrow(dim, 0, used))
    return grown


class Scheduler:
    """Admits requests into one running batch and advances them one token per step.

    ``submit`` and ``cancel`` may be called from any thread (the event loop's); ``step`` from
    one worker thread at a time. Only short bookkeeping happens under the lock, never a
    forward pass, so submitting never waits for the model.
    """

    @classmethod
    def from_settings(cls, engine: Engine) -> "Scheduler":
        return cls(
            engine,
            max_active=settings.LLM_MAX_BATCH,
            max_batch_tokens=settings.LLM_MAX_BATCH_TOKENS,
            max_queue=settings.LLM_QUEUE_SIZE,
        )

    def __init__(self, engine: Engine, *, max_active: int, max_batch_tokens: int, max_queue: int):
        self.engine = engine
        self.max_active = max_active
        self.max_batch_tokens = max_batch_tokens
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._cancel_requests: set[str] = set()
        # Requests in the batch, as the submitting thread may see them (under the lock).
        self._active_ids: set[str] = set()
        # The batch itself belongs to the thread that runs step().
        self._sequences: list[_Sequence] = []
        self._cache: _BatchCache | None = None
        # Sequences that ended this step and still owe their final event.
        self._leaving: list[_Sequence] = []
        self._stop_ids = engine.stop_token_ids
        self._stop_strings = tuple(getattr(engine, "stop_strings", ()))
        _alibi_by_column(engine.model)
        forward = inspect.signature(engine.model.forward).parameters
        # transformers 5 renamed past_key_values to cache; accept a model of either kind.
        self._cache_argument = "cache" if "cache" in forward else "past_key_values"
        self._extra_arguments = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}

    # --- Called from the event loop's thread ---------------------------------------------

    def submit(self, request_id: str, prompt_ids: list[int], params: SamplingParams) -> None:
        """Queue a request; it joins the batch at a following step.

        Raises QueueFull when ``max_queue`` requests already wait beyond the free places in
        the batch, and ValueError for a prompt that could never be admitted.
        """
        if not prompt_ids:
            raise ValueError("The prompt is empty.")
        limit = min(self.engine.context_length, self.max_batch_tokens)
        if len(prompt_ids) >= limit:
            raise ValueError(
                f"The prompt has {len(prompt_ids)} tokens; at most {limit - 1} fit with an answer."
            )
        # An answer that would overflow the context ends early with finish_reason "length".
        request = _Request(
            request_id,
            list(prompt_ids),
            params,
            min(params.max_new_tokens, limit - len(prompt_ids)),
        )
        with self._lock:
            if request_id in self._active_ids or any(
                waiting.request_id == request_id for waiting in self._waiting
            ):
                raise ValueError(f"Request {request_id} is already being answered.")
            free_places = max(0, self.max_active - len(self._active_ids))
            if len(self._waiting) - free_places >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting.")
            self._waiting.append(request)

    def cancel(self, request_id: str) -> None:
        """Stop a request at the next step; unknown or finished requests are ignored."""
        with self._lock:
            self._cancel_requests.add(request_id)

    def has_work(self) -> bool:
        with self._lock:
            return bool(self._waiting or self._active_ids or self._cancel_requests)

    def queued(self) -> int:
        with self._lock:
            return len(self._waiting)

    def active(self) -> int:
        with self._lock:
            return len(self._active_ids)

    # --- Called from the worker thread ----------------------------------------------------

    def step(self) -> list[StepEvent]:
        events: list[StepEvent] = []
        with self._lock:
            cancelled, self._cancel_requests = self._cancel_requests, set()
            for request in [r for r in self._waiting if r.request_id in cancelled]:
                self._waiting.remove(request)
                events.append(_event(request, "", "cancelled", 0))
            admitted = self._admit()
            self._active_ids.update(request.request_id for request in admitted)
        for sequence in self._sequences:
            if sequence.request.request_id in cancelled:
                sequence.finish_reason = "cancelled"
        with torch.inference_mode():
            # Cancelled rows leave before the forward pass instead of costing one more token.
            events += self._release()
            self._prefill(admitted)
            if self._sequences:
                self._decode()
            events += self._release()
        return events

    def _admit(self) -> list[_Request]:
        """Waiting requests that fit now, oldest first. One that does not fit holds back
        the later ones, so a long prompt is not overtaken forever by short ones."""
        in_flight = sum(sequence.request.reserved_tokens for sequence in self._sequences)
        places = self.max_active - len(self._active_ids)
        admitted = []
        while self._waiting and len(admitted) < places:
            request = self._waiting[0]
            if in_flight + request.reserved_tokens > self.max_batch_tokens:
                break
            in_flight += request.reserved_tokens
            admitted.append(self._waiting.popleft())
        return admitted

    def _forward(self, cache: _BatchCache, input_ids, positions, mask) -> torch.Tensor:
        cache.reserve(input_ids.shape[1])
        output = self.engine.model(
            input_ids=input_ids,
            position_ids=positions,
            attention_mask=mask,
            use_cache=True,
            **{self._cache_argument: cache},
            **self._extra_arguments,
        )
        cache.advance(input_ids.shape[1])
        return output.logits[:, -1, :]

    def _prefill(self, admitted: list[_Request]) -> None:
        """Run the new prompts through the model, several in one forward pass, then merge
        them all into the running batch with one copy.

        Newcomers are grouped by length (left-padded to the longest of their group, at most
        PREFILL_GROUP_TOKENS padded tokens a group): one pass for many prompts costs far
        less than one pass each, so N people arriving together wait for about one prefill,
        not N, before their first token."""
        joining: list[_BatchCache] = []
        newcomers: list[_Sequence] = []
        for group in _prefill_groups(admitted):
            sequences = [
                _Sequence(r, IncrementalDecoder(self.engine.tokenizer), self._stop_strings)
                for r in group
            ]
            try:
                cache, logits = self._prefill_group(group)
                tokens = self._sample(logits, [request.params for request in group])
                for sequence, token in zip(sequences, tokens, strict=True):
                    self._accept(sequence, token)
            except Exception:
                logger.exception("Prefill of %d requests failed", len(group))
                for sequence in sequences:
                    sequence.finish_reason = "error"
            keep = [row for row, sequence in enumerate(sequences) if sequence.finish_reason is None]
            self._leaving += [sequence for sequence in sequences if sequence.finish_reason]
            if keep:
                joining.append(cache if len(keep) == len(group) else cache.select(keep))
                newcomers += [sequences[row] for row in keep]
        if not joining:
            return
        parts = [] if self._cache is None else [self._cache]
        try:
            self._cache = _BatchCache.merged(parts + joining)
        except Exception:
            # Out of memory, typically: the running batch is untouched, only the newcomers
            # fail.
            logger.exception("Could not add %d requests to the batch", len(newcomers))
            for sequence in newcomers:
                sequence.finish_reason = "error"
                self._leaving.append(sequence)
            return
        self._sequences += newcomers

    def _prefill_group(self, group: list[_Request]) -> tuple["_BatchCache", torch.Tensor]:
        """One forward pass over the left-padded prompts of ``group``: their cache, and the
        logits of each prompt's last token."""
        device = self.engine.device
        dtype = self.engine.dtype
        length = max(len(request.prompt_ids) for request in group)
        padding = torch.tensor(
            [length - len(request.prompt_ids) for request in group], dtype=torch.long, device=device
        )
        input_ids = torch.tensor(
            [[0] * (length - len(r.prompt_ids)) + r.prompt_ids for r in group],
            dtype=torch.long,
            device=device,
        )
        columns = torch.arange(length, device=device)
        positions = (columns[None, :] - padding[:, None]).clamp_(min=0)
        hidden = torch.finfo(dtype).min
        # A token sees itself and the real tokens before it; a padding token only itself,
        # so that no row of the attention is empty (it would give NaN).
        future = columns[None, :] > columns[:, None]
        is_padding = columns[None, :] < padding[:, None]
        blocked = future[None, :, :] | (
            is_padding[:, None, :] & ~torch.eye(length, dtype=torch.bool, device=device)
        )
        mask = torch.zeros(len(group), 1, length, length, dtype=dtype, device=device)
        mask.masked_fill_(blocked[:, None], hidden)
        cache = _BatchCache(len(group), device, dtype)
        logits = self._forward(cache, input_ids, positions, mask)
        cache.padding = padding
        cache.mask[:, :length] = torch.where(is_padding, hidden, 0.0).to(dtype)
        return cache, logits

    def _decode(self) -> None:
        device = self.engine.device
        sequences = self._sequences
        input_ids = torch.tensor(
            [[sequence.last_token] for sequence in sequences], dtype=torch.long, device=device
        )
        cache = self._cache
        try:
            # Room first: growing the cache replaces its mask, which the step must see whole.
            cache.reserve(1)
            logits = self._forward(cache, input_ids, cache.positions(), cache.decode_mask())
            tokens = self._sample(logits, [sequence.request.params for sequence in sequences])
        except Exception:
            logger.exception("A decode step failed; ending the %d answers in it", len(sequences))
            for sequence in sequences:
                sequence.finish_reason = "error"
            return
        for sequence, token in zip(sequences, tokens, strict=True):
            self._accept(sequence, token)

    def _accept(self, sequence: _Sequence, token: int) -> None:
        request = sequence.request
        if token in self._stop_ids and not request.params.ignore_eos:
            sequence.finish_reason = "stop"
            return
        sequence.last_token = token
        sequence.completion_tokens += 1
        sequence.take(sequence.decoder.push(token))
        if sequence.finish_reason is None and sequence.completion_tokens >= request.max_new_tokens:
            sequence.finish_reason = "length"

    def _sample(self, logits: torch.Tensor, params: list[SamplingParams]) -> list[int]:
        tokens = logits.argmax(dim=-1)
        sampled = [row for row, p in enumerate(params) if not p.greedy]
        if sampled:
            device = logits.device
            rows = torch.tensor(sampled, device=device)
            temperature = torch.tensor([params[row].temperature for row in sampled], device=device)
            top_p = torch.tensor([params[row].top_p for row in sampled], device=device)
            scaled = logits.index_select(0, rows).float() / temperature[:, None]
            probs = torch.softmax(scaled, dim=-1)
            if any(params[row].top_p < 1.0 for row in sampled):
                # Sorting the vocabulary costs more than the rest of sampling: only for top_p.
                probs, order = probs.sort(dim=-1, descending=True)
                # The smallest set of most likely tokens whose probabilities reach top_p;
                # the most likely token is always in it.
                probs.masked_fill_(probs.cumsum(dim=-1) - probs >= top_p[:, None], 0.0)
                choice = order.gather(1, torch.multinomial(probs, 1))
            else:
                choice = torch.multinomial(probs, 1)
            tokens.index_copy_(0, rows, choice.squeeze(1))
        return tokens.tolist()

    def _release(self) -> list[StepEvent]:
        """Events for new text and ended answers; ended answers leave the batch."""
        events = []
        keep = []
        for row, sequence in enumerate(self._sequences):
            if sequence.finish_reason is None:
                keep.append(row)
                if sequence.text:
                    events.append(sequence.event())
        if len(keep) < len(self._sequences):
            self._leaving += [s for s in self._sequences if s.finish_reason is not None]
            self._cache = self._cache.select(keep) if keep else None
            self._sequences = [self._sequences[row] for row in keep]
        if self._leaving:
            events += [sequence.event() for sequence in self._leaving]
            with self._lock:
                self._active_ids.difference_update(s.request.request_id for s in self._leaving)
            self._leaving = []
        return events


def _event(
    request: _Request, text: str, finish_reason: str | None, completion_tokens: int
) -> StepEvent:
    return StepEvent(
        request_id=request.request_id,
        text=text,
        finished=finish_reason is not None,
        finish_reason=finish_reason,
        prompt_tokens=len(request.prompt_ids),
        completion_tokens=completion_tokens,
    )
