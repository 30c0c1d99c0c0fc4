"""Prompt text → text-encoder conditioning: 75-token chunks, BREAK, emphasis, clip skip, embeddings, cache."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from modules import prompt_parser

CHUNK_TOKENS = 75
# Emphasis weights are clamped to ±this: a larger one (`(a:99999999999)`) would overflow the token
# vectors to inf, and no useful prompt comes near it.
MAX_EMPHASIS = 1000.0
_CHUNKS_PER_CALL = 16  # a long prompt's chunks are encoded this many at a time


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompt: `embeds` is (1, 77·chunks, dim); `pooled` is set for SDXL."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    embeddings_used: tuple[str, ...] = ()

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_TOKENS + 2)


@dataclass
class Segment:
    """Token ids with one emphasis weight; `tokens=None` is a BREAK, `atomic` ones (embeddings) never split."""

    tokens: list[int] | None
    weight: float = 1.0
    atomic: bool = False


@dataclass
class TokenChunk:
    """Up to 75 prompt tokens (before BOS/EOS) and each token's emphasis weight."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class EncoderSlot:
    """One CLIP text encoder with its tokenizer. `penultimate` encoders (SDXL) skip the final norm."""

    tokenizer: object
    encoder: torch.nn.Module
    penultimate: bool = False
    pooled: bool = False

    @property
    def width(self) -> int:
        return self.encoder.get_input_embeddings().weight.shape[1]


@dataclass(frozen=True)
class EncoderOptions:
    """Settings that change what a prompt encodes to (so they are part of the cache key)."""

    comma_backtrack: int = 20
    emphasis: str = "Original"

    @classmethod
    def from_options(cls, opts: Any) -> EncoderOptions:
        """The prompt-encoding settings `opts` hold now (a job's override_settings included)."""
        return cls(opts.comma_padding_backtrack, opts.emphasis)


def split_into_chunks(segments: list[Segment], comma_token: int | None, comma_backtrack: int = 20) -> list[TokenChunk]:
    """Split weighted token runs into chunks of 75.

    When a chunk fills and the last comma is within `comma_backtrack` tokens of its end, the
    tokens after that comma move to the next chunk so a phrase is not cut in half. An atomic
    segment that does not fit in the current chunk starts a new one.
    """
    chunks: list[TokenChunk] = []
    current = TokenChunk()
    last_comma = -1

    def close() -> None:
        nonlocal current, last_comma
        chunks.append(current)
        current = TokenChunk()
        last_comma = -1

    for segment in segments:
        if segment.tokens is None:
            close()
            continue
        if segment.atomic and current.tokens and len(current.tokens) + len(segment.tokens) > CHUNK_TOKENS:
            close()
        for token in segment.tokens:
            if token == comma_token:
                last_comma = len(current.tokens)
            elif (
                comma_backtrack
                and len(current.tokens) == CHUNK_TOKENS
                and last_comma != -1
                and len(current.tokens) - last_comma <= comma_backtrack
            ):
                cut = last_comma + 1
                moved = TokenChunk(current.tokens[cut:], current.weights[cut:])
                del current.tokens[cut:], current.weights[cut:]
                close()
                current = moved
            if len(current.tokens) == CHUNK_TOKENS:
                close()
            current.tokens.append(token)
            current.weights.append(segment.weight)
    if current.tokens or not chunks:
        close()
    return chunks


def _final_norm(encoder: torch.nn.Module) -> torch.nn.Module:
    return getattr(encoder, "text_model", encoder).final_layer_norm


@contextlib.contextmanager
def _extra_token_rows(embedding: torch.nn.Embedding, extra: torch.Tensor) -> Iterator[None]:
    """While active, ids past the vocabulary look up rows of `extra` (textual inversion vectors).

    Hooks clamp the ids going in and put the extra rows into what comes out; removing the
    hooks restores the layer exactly.
    """
    vocab = embedding.num_embeddings
    pending: list[torch.Tensor] = []

    def before(module, args):
        ids = args[0]
        pending.append(ids)
        return (ids.clamp(max=vocab - 1),)

    def after(module, args, output):
        ids = pending.pop()
        mask = ids >= vocab
        if bool(mask.any()):
            output = output.clone()
            output[mask] = extra[ids[mask] - vocab].to(output.dtype)
        return output

    handles = [embedding.register_forward_pre_hook(before), embedding.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class PromptEncoder:
    """Encodes prompts for one loaded model, with an LRU cache keyed by everything that matters."""

    def __init__(
        self, slots: list[EncoderSlot], device: torch.device, dtype: torch.dtype, cache_size: int = 64
    ) -> None:
        self.slots = slots
        self.device = device
        self.dtype = dtype
        self._cache: OrderedDict[tuple, Conditioning] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.encoder_calls = 0
        tokenizer = slots[0].tokenizer
        self._bos = tokenizer.bos_token_id
        self._eos = tokenizer.eos_token_id
        self._comma = tokenizer.convert_tokens_to_ids(",</w>")
        self._vocab = slots[0].encoder.get_input_embeddings().num_embeddings
        self._embedding_ids: dict[str, tuple[int, int]] = {}
        self._extra_rows: list[torch.Tensor] = []
        self._embeddings_version: Hashable = ()

    @property
    def widths(self) -> list[int]:
        return [slot.width for slot in self.slots]

    def set_embeddings(self, embeddings: dict[str, list[torch.Tensor]], version: Hashable) -> None:
        """Make these embeddings (name → one tensor per encoder) usable by name in prompts."""
        if version == self._embeddings_version:
            return
        ids, start = {}, self._vocab
        for name, vectors in embeddings.items():
            ids[name] = (start, vectors[0].shape[0])
            start += vectors[0].shape[0]
        rows = [
            torch.cat([vectors[i] for vectors in embeddings.values()]).to(self.device) if embeddings else torch.empty(0)
            for i in range(len(self.slots))
        ]
        with self._lock:
            self._embedding_ids, self._extra_rows = ids, rows
            self._embeddings_version = version
            self._cache.clear()

    def tokenize(
        self, text: str, options: EncoderOptions = EncoderOptions()
    ) -> tuple[list[TokenChunk], tuple[str, ...]]:
        """The prompt's chunks (emphasis, BREAKs, embeddings, comma backtrack) and the embeddings used."""
        if options.emphasis == "None":
            parts = [[text, 1.0]]
        else:
            parts = prompt_parser.parse_prompt_attention(text)
        segments: list[Segment] = []
        used: list[str] = []
        for part, weight in parts:
            if part == "BREAK" and weight == -1:
                segments.append(Segment(None))
                continue
            weight = 1.0 if options.emphasis == "Ignore" else float(weight)
            position = 0
            for match in prompt_parser.find_embeddings(part, self._embedding_ids):
                segments.extend(self._text_segments(part[position : match.start], weight))
                start, count = self._embedding_ids[match.name]
                segments.append(Segment(list(range(start, start + count)), weight, atomic=True))
                used.append(match.name)
                position = match.end
            segments.extend(self._text_segments(part[position:], weight))
        return split_into_chunks(segments, self._comma, options.comma_backtrack), tuple(dict.fromkeys(used))

    def _text_segments(self, text: str, weight: float) -> list[Segment]:
        if not text:
            return []
        text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate (from JSON) becomes "?"
        return [Segment(self.slots[0].tokenizer(text, add_special_tokens=False)["input_ids"], weight)]

    def chunk_count(self, text: str, options: EncoderOptions = EncoderOptions()) -> int:
        """How many 75-token chunks `text` encodes to (tokenizing only)."""
        return len(self.tokenize(text, options)[0])

    def token_count(self, text: str, options: EncoderOptions = EncoderOptions()) -> tuple[int, int]:
        """(tokens used, tokens available) as the page's counter shows them, e.g. (80, 150)."""
        chunks, _ = self.tokenize(text, options)
        return sum(len(c.tokens) for c in chunks), max(1, len(chunks)) * CHUNK_TOKENS

    def encode(
        self, text: str, clip_skip: int = 1, options: EncoderOptions = EncoderOptions(), variant: Hashable = ()
    ) -> Conditioning:
        """Encoded conditioning for `text`, from the cache when it was encoded before.

        `variant` names anything else that changes the text encoders' output (active LoRAs).
        """
        key = (text, clip_skip, options, variant, self._embeddings_version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        result = self._encode_uncached(text, clip_skip, options)
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    @torch.inference_mode()
    def _encode_uncached(self, text: str, clip_skip: int, options: EncoderOptions) -> Conditioning:
        self.encoder_calls += 1
        chunks, used = self.tokenize(text, options)
        embeds, pooled = [], None
        for first in range(0, len(chunks), _CHUNKS_PER_CALL):  # chunks go through the encoders in batches
            group = chunks[first : first + _CHUNKS_PER_CALL]
            per_encoder = []
            for slot_no, slot in enumerate(self.slots):
                ids = [
                    [self._bos]
                    + chunk.tokens
                    + [self._eos]
                    + [slot.tokenizer.pad_token_id] * (CHUNK_TOKENS - len(chunk.tokens))
                    for chunk in group
                ]
                hidden, slot_pooled = self._run_encoder(slot_no, ids, clip_skip)
                per_encoder.append(hidden)
                if slot.pooled and first == 0:
                    pooled = slot_pooled[:1]
            z = torch.cat(per_encoder, dim=-1).float()
            for row, chunk in enumerate(group):
                pad = CHUNK_TOKENS - len(chunk.tokens)
                weights = torch.tensor([1.0] + chunk.weights + [1.0] * (pad + 1), device=self.device)
                embeds.append(_apply_emphasis(z[row : row + 1], weights, normalize=options.emphasis == "Original"))
        limit = torch.finfo(self.dtype).max  # extreme emphasis stays finite in half precision too
        result = torch.cat(embeds, dim=1).clamp(-limit, limit).to(self.dtype)
        return Conditioning(result, pooled.to(self.dtype) if pooled is not None else None, used)

    def _run_encoder(
        self, slot_no: int, ids: list[list[int]], clip_skip: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        slot = self.slots[slot_no]
        tokens = torch.tensor(ids, device=self.device)
        rows = self._extra_rows[slot_no] if self._extra_rows else None
        patch = (
            _extra_token_rows(slot.encoder.get_input_embeddings(), rows)
            if rows is not None and int(tokens.max()) >= self._vocab
            else contextlib.nullcontext()
        )
        with patch:
            out = slot.encoder(tokens, output_hidden_states=True)
        layers = len(out.hidden_states) - 1
        skip = max(1, min(clip_skip, layers))
        if slot.penultimate:
            hidden = out.hidden_states[-(skip + 1)]
        elif skip == 1:
            hidden = out.last_hidden_state
        else:
            hidden = _final_norm(slot.encoder)(out.hidden_states[-skip])
        return hidden, getattr(out, "text_embeds", None)


def _apply_emphasis(z: torch.Tensor, weights: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Scale token vectors by their weights (clamped to ±MAX_EMPHASIS); "Original" emphasis then
    restores the mean, unless the weighted mean is 0 (weights that cancel out) and cannot be rescaled."""
    if bool((weights == 1.0).all()):
        return z
    original_mean = z.mean()
    z = z * weights.clamp(-MAX_EMPHASIS, MAX_EMPHASIS).reshape(1, -1, 1)
    weighted_mean = z.mean()
    return z * (original_mean / weighted_mean) if normalize and bool(weighted_mean != 0) else z
