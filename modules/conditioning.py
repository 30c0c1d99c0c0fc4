"""Prompt text → text-encoder conditioning: 75-token chunks, BREAK, emphasis, clip skip, cache."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from modules import prompt_parser

CHUNK_TOKENS = 75


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompt: `embeds` is (1, 77·chunks, dim); `pooled` is set for SDXL."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_TOKENS + 2)

    def padded_to(self, chunks: int, empty: "Conditioning") -> "Conditioning":
        """Append copies of the empty prompt's chunk until there are `chunks` chunks."""
        missing = chunks - self.chunks
        if missing <= 0:
            return self
        extra = empty.embeds[:, : CHUNK_TOKENS + 2].repeat(1, missing, 1)
        return Conditioning(torch.cat([self.embeds, extra], dim=1), self.pooled)


@dataclass
class TokenChunk:
    """75 prompt tokens (before BOS/EOS) and each token's emphasis weight."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class EncoderSlot:
    """One CLIP text encoder with its tokenizer. `penultimate` encoders (SDXL) skip the final norm."""

    tokenizer: object
    encoder: torch.nn.Module
    penultimate: bool = False
    pooled: bool = False


def split_into_chunks(segments: list[tuple[list[int], float]], comma_token: int | None,
                      comma_backtrack: int = 20) -> list[TokenChunk]:
    """Split weighted token runs into chunks of 75; `None` token lists mark BREAK.

    When a chunk fills and the last comma is within `comma_backtrack` tokens of its end, the
    tokens after that comma move to the next chunk so a phrase is not cut in half.
    """
    chunks: list[TokenChunk] = []
    current = TokenChunk()
    last_comma = -1

    def close() -> None:
        nonlocal current, last_comma
        chunks.append(current)
        current = TokenChunk()
        last_comma = -1

    for tokens, weight in segments:
        if tokens is None:
            close()
            continue
        for token in tokens:
            if token == comma_token:
                last_comma = len(current.tokens)
            elif (comma_backtrack and len(current.tokens) == CHUNK_TOKENS and last_comma != -1
                  and len(current.tokens) - last_comma <= comma_backtrack):
                cut = last_comma + 1
                moved = TokenChunk(current.tokens[cut:], current.weights[cut:])
                del current.tokens[cut:], current.weights[cut:]
                close()
                current = moved
            if len(current.tokens) == CHUNK_TOKENS:
                close()
            current.tokens.append(token)
            current.weights.append(weight)
    if current.tokens or not chunks:
        close()
    return chunks


def _final_norm(encoder: torch.nn.Module) -> torch.nn.Module:
    return getattr(encoder, "text_model", encoder).final_layer_norm


class PromptEncoder:
    """Encodes prompts for one loaded model; results are cached by (text, clip skip)."""

    def __init__(self, slots: list[EncoderSlot], device: torch.device, dtype: torch.dtype,
                 cache_size: int = 64, comma_backtrack: int = 20) -> None:
        self.slots = slots
        self.device = device
        self.dtype = dtype
        self.comma_backtrack = comma_backtrack
        self._cache: OrderedDict[tuple, Conditioning] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.encoder_calls = 0
        tokenizer = slots[0].tokenizer
        self._bos = tokenizer.bos_token_id
        self._eos = tokenizer.eos_token_id
        self._comma = tokenizer.convert_tokens_to_ids(",</w>")

    def tokenize(self, text: str) -> list[TokenChunk]:
        """The prompt's chunks: emphasis parsed, BREAKs honoured, commas backtracked."""
        parts = prompt_parser.parse_prompt_attention(text)
        texts = [part for part, weight in parts if not (part == "BREAK" and weight == -1)]
        ids = iter(self.slots[0].tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
        segments = [(None, 0.0) if part == "BREAK" and weight == -1 else (next(ids), float(weight))
                    for part, weight in parts]
        return split_into_chunks(segments, self._comma, self.comma_backtrack)

    def token_count(self, text: str) -> tuple[int, int]:
        """(tokens used, tokens available) as the page's counter shows them, e.g. (80, 150)."""
        chunks = self.tokenize(text)
        used = sum(len(c.tokens) for c in chunks[:-1]) + len(chunks[-1].tokens) if chunks else 0
        return used, max(1, len(chunks)) * CHUNK_TOKENS

    def encode(self, text: str, clip_skip: int = 1) -> Conditioning:
        """Encoded conditioning for `text`, from the cache when it was encoded before."""
        key = (text, clip_skip, self.comma_backtrack)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        result = self._encode_uncached(text, clip_skip)
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    @torch.inference_mode()
    def _encode_uncached(self, text: str, clip_skip: int) -> Conditioning:
        self.encoder_calls += 1
        chunks = self.tokenize(text)
        embeds, pooled = [], None
        for index, chunk in enumerate(chunks):
            pad = CHUNK_TOKENS - len(chunk.tokens)
            weights = torch.tensor([1.0] + chunk.weights + [1.0] * (pad + 1), device=self.device)
            per_encoder = []
            for slot in self.slots:
                ids = [self._bos] + chunk.tokens + [self._eos] + [slot.tokenizer.pad_token_id] * pad
                hidden, slot_pooled = self._run_encoder(slot, ids, clip_skip)
                per_encoder.append(hidden)
                if slot.pooled and index == 0:
                    pooled = slot_pooled
            z = torch.cat(per_encoder, dim=-1).float()
            embeds.append(_apply_emphasis(z, weights))
        result = torch.cat(embeds, dim=1).to(self.dtype)
        return Conditioning(result, pooled.to(self.dtype) if pooled is not None else None)

    def _run_encoder(self, slot: EncoderSlot, ids: list[int], clip_skip: int
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = torch.tensor([ids], device=self.device)
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


def _apply_emphasis(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A1111's "Original" emphasis: scale token vectors by weight, then restore the mean."""
    if bool((weights == 1.0).all()):
        return z
    original_mean = z.mean()
    z = z * weights.reshape(1, -1, 1)
    return z * (original_mean / z.mean())
