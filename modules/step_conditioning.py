"""Conditioning that changes during sampling: prompt editing, alternation and AND (composable diffusion)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

import torch

from modules import prompt_parser
from modules.conditioning import Conditioning, EncoderOptions, PromptEncoder

# A scheduled text: (last step it is used at, 0-based as in A1111's sampler loop; its conditioning).
Schedule = tuple[tuple[int, Conditioning], ...]
# The same before encoding: (last step, text).
TextSchedule = tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Timeline:
    """What prompt-editing steps count: A1111 schedules a pass's prompts over its model calls (`steps`: twice the
    sampling steps for second-order samplers); in a hires pass, `hires_steps` are its calls and `steps` the
    first pass's, so `[a:b:1.5]` switches halfway through the hires pass (A1111 ≥ 1.6), unless
    `use_old_scheduling` (A1111's "Use old prompt editing timelines")."""

    steps: int
    hires_steps: int | None = None
    use_old_scheduling: bool = False


@dataclass(frozen=True)
class BatchTexts:
    """Every text a batch's conditioning is made of: each image's AND parts (each with its weight) and each
    image's negative prompt, as (last step, text) pairs. Parsing only: nothing is tokenized or encoded."""

    positive: tuple[tuple[tuple[TextSchedule, float], ...], ...]
    negative: tuple[TextSchedule, ...]

    @classmethod
    def of(cls, prompts: list[str], negatives: list[str], timeline: Timeline | int) -> "BatchTexts":
        """The texts of a batch of `prompts` and `negatives` over `timeline` (or that many steps)."""
        t = timeline if isinstance(timeline, Timeline) else Timeline(timeline)
        positive = []
        for prompt in prompts:
            parsed = prompt_parser.parse_prompt(prompt, t.steps, t.hires_steps, t.use_old_scheduling)
            positive.append(tuple((tuple((e.end_at_step, e.text) for e in sub.schedule), sub.weight)
                                  for sub in parsed.subprompts))
        negative = []
        for text in negatives:
            text, _ = prompt_parser.extract_extra_networks(text)
            pairs = prompt_parser.get_learned_conditioning_prompt_schedules([text], t.steps, t.hires_steps,
                                                                            t.use_old_scheduling)[0]
            negative.append(tuple((end, scheduled) for end, scheduled in pairs))
        return cls(tuple(positive), tuple(negative))

    @property
    def and_parts(self) -> int:
        """The most AND parts any image's prompt has."""
        return max((len(parts) for parts in self.positive), default=0)

    def distinct(self) -> list[str]:
        """Each text that is encoded, once."""
        schedules = [*self.negative, *(pairs for parts in self.positive for pairs, _ in parts)]
        return list(dict.fromkeys(text for pairs in schedules for _, text in pairs))


@dataclass(frozen=True)
class StepBatch:
    """What the UNet gets at one step: the negative conditioning of every image, then each image's
    AND parts; `part_image[k]` is the image of part k and `part_weight[k]` its weight."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None
    part_image: torch.Tensor
    part_weight: torch.Tensor

    @property
    def images(self) -> int:
        return self.embeds.shape[0] - self.part_image.shape[0]


def _entry_at(schedule: Schedule, step: int) -> int:
    return next((i for i, (end, _) in enumerate(schedule) if step <= end), len(schedule) - 1)


class StepConditioning:
    """Encodes each distinct text of a batch once, and assembles the UNet batch for any step."""

    def __init__(self, encoder: PromptEncoder, prompts: list[str], negatives: list[str], steps: Timeline | int,
                 clip_skip: int = 1, options: EncoderOptions = EncoderOptions(), variant: Hashable = ()) -> None:
        def encode(text: str) -> Conditioning:
            return encoder.encode(text, clip_skip, options, variant)

        def scheduled(pairs) -> Schedule:
            return tuple((end, encode(text)) for end, text in pairs)

        texts = BatchTexts.of(prompts, negatives, steps)
        self.positive: list[list[tuple[Schedule, float]]] = [[(scheduled(pairs), weight) for pairs, weight in parts]
                                                              for parts in texts.positive]
        self.negative: list[Schedule] = [scheduled(pairs) for pairs in texts.negative]
        conds = [c for s in self._schedules() for _, c in s]
        self._chunks = max(c.chunks for c in conds)
        self._empty = encode("")
        self._device = conds[0].embeds.device
        self._last: tuple[tuple, StepBatch] | None = None

    def _schedules(self) -> list[Schedule]:
        return self.negative + [schedule for parts in self.positive for schedule, _ in parts]

    @property
    def embeddings_used(self) -> list[str]:
        """Textual inversion embeddings any of the texts used."""
        return list(dict.fromkeys(name for s in self._schedules() for _, c in s for name in c.embeddings_used))

    @property
    def varies(self) -> bool:
        """Whether the conditioning changes during sampling."""
        return any(len(s) > 1 for s in self._schedules())

    def at(self, step: int) -> StepBatch:
        """The batch for sampling step `step` (0-based); rebuilt only when the selection changes."""
        selection = tuple(_entry_at(s, step) for s in self._schedules())
        if self._last is not None and self._last[0] == selection:
            return self._last[1]
        picked = [s[i][1].padded_to(self._chunks, self._empty) for s, i in zip(self._schedules(), selection)]
        pooled = [c.pooled for c in picked]
        batch = StepBatch(
            embeds=torch.cat([c.embeds for c in picked]),
            pooled=torch.cat(pooled) if all(p is not None for p in pooled) else None,
            part_image=torch.tensor([i for i, parts in enumerate(self.positive) for _ in parts], device=self._device),
            part_weight=torch.tensor([w for parts in self.positive for _, w in parts], device=self._device),
        )
        self._last = (selection, batch)
        return batch

