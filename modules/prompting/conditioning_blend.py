"""A job's conditioning part-way between its own prompt's and another prompt's: what the "Prompt interpolation"
script renders frame by frame. Each image's text conditioning (and, for SDXL, its pooled output) is the lerp or
slerp, at `weight`, of the two prompts' conditionings at every step; the negative prompt stays the job's."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from modules.errors import UserError
from modules.prompting.step_conditioning import StepBatch, StepConditioning, with_empty_chunks

LERP, SLERP = "lerp", "slerp"
METHODS = (LERP, SLERP)


@dataclass(frozen=True)
class ConditioningBlend:
    """Blend the job's conditioning with `prompt`'s: 0 is the job's own, 1 is `prompt`'s."""

    prompt: str
    weight: float
    method: str = SLERP

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"Interpolation must be one of {', '.join(METHODS)}, not {self.method!r}")


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """a + (b − a)·t."""
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation of each vector along the last dimension (each token's embedding, each pooled
    output), in float32; where two vectors point the same way it is the lerp."""
    a32, b32 = a.float(), b.float()
    unit_a = a32 / a32.norm(dim=-1, keepdim=True).clamp_min(eps)
    unit_b = b32 / b32.norm(dim=-1, keepdim=True).clamp_min(eps)
    theta = torch.acos((unit_a * unit_b).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin = torch.sin(theta)
    curved = sin > eps
    safe_sin = torch.where(curved, sin, torch.ones_like(sin))
    weight_a = torch.where(curved, torch.sin((1 - t) * theta) / safe_sin, torch.full_like(sin, 1 - t))
    weight_b = torch.where(curved, torch.sin(t * theta) / safe_sin, torch.full_like(sin, t))
    return (weight_a * a32 + weight_b * b32).to(a.dtype)


BLENDS = {LERP: lerp, SLERP: slerp}


class BlendedConditioning:
    """Stands in for the job's StepConditioning (`at`, `empty_chunk`, `embeddings_used`): `source`'s and
    `target`'s step batches blended; the shorter text is first padded with empty-prompt chunks."""

    def __init__(self, source: StepConditioning, target: StepConditioning, blend: ConditioningBlend) -> None:
        self.source, self.target, self.blend = source, target, blend
        self._last: tuple[tuple[int, int], StepBatch] | None = None

    @property
    def empty_chunk(self) -> torch.Tensor:
        return self.source.empty_chunk

    @property
    def embeddings_used(self) -> list[str]:
        return list(dict.fromkeys([*self.source.embeddings_used, *self.target.embeddings_used]))

    def at(self, step: int) -> StepBatch:
        a, b = self.source.at(step), self.target.at(step)
        key = (id(a), id(b))  # each side keeps returning the same batch while its selection holds
        if self._last is None or self._last[0] != key:
            self._last = (key, self._blended(a, b))
        return self._last[1]

    def _blended(self, a: StepBatch, b: StepBatch) -> StepBatch:
        if a.parts != b.parts:
            raise UserError(f"Prompt interpolation needs prompts with as many AND parts: {a.parts} and {b.parts}")
        mix = BLENDS[self.blend.method]
        cond_a, cond_b = a.cond, b.cond
        chunk = self.empty_chunk.shape[1]
        if cond_a.shape[1] < cond_b.shape[1]:
            cond_a = with_empty_chunks(cond_a, (cond_b.shape[1] - cond_a.shape[1]) // chunk, self.empty_chunk)
        elif cond_b.shape[1] < cond_a.shape[1]:
            cond_b = with_empty_chunks(cond_b, (cond_a.shape[1] - cond_b.shape[1]) // chunk, self.empty_chunk)
        pooled = None if a.cond_pooled is None else mix(a.cond_pooled, b.cond_pooled, self.blend.weight)
        return replace(a, cond=mix(cond_a, cond_b, self.blend.weight), cond_pooled=pooled)
