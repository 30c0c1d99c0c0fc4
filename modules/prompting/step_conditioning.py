"""Conditioning that changes during sampling: prompt editing, alternation and AND (composable diffusion)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace

import torch

from modules import prompt_parser
from modules.prompting.conditioning import Conditioning, EncoderOptions, PromptEncoder

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
    def of(cls, prompts: list[str], negatives: list[str], timeline: Timeline | int) -> BatchTexts:
        """The texts of a batch of `prompts` and `negatives` over `timeline` (or that many steps)."""
        t = timeline if isinstance(timeline, Timeline) else Timeline(timeline)
        positive = []
        for prompt in prompts:
            parsed = prompt_parser.parse_prompt(prompt, t.steps, t.hires_steps, t.use_old_scheduling)
            positive.append(
                tuple((tuple((e.end_at_step, e.text) for e in sub.schedule), sub.weight) for sub in parsed.subprompts)
            )
        negative = []
        for text in negatives:
            text, _ = prompt_parser.extract_extra_networks(text)
            pairs = prompt_parser.get_learned_conditioning_prompt_schedules(
                [text], t.steps, t.hires_steps, t.use_old_scheduling
            )[0]
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
    """What the UNet gets at one step: each image's AND parts (`cond`; part k belongs to image `part_image[k]` and
    weighs `part_weight[k]`) and each image's negative prompt (`uncond`). Within each, shorter texts are padded
    by repeating their last vector, as A1111 does; cond and uncond may differ in length (see `matched`)."""

    cond: torch.Tensor
    uncond: torch.Tensor
    cond_pooled: torch.Tensor | None
    uncond_pooled: torch.Tensor | None
    part_image: torch.Tensor
    part_weight: torch.Tensor

    @property
    def images(self) -> int:
        return self.uncond.shape[0]

    @property
    def parts(self) -> int:
        return self.cond.shape[0]

    def matched(self, padding: str, empty: torch.Tensor) -> tuple[StepBatch, str | None]:
        """The batch with cond and uncond made the same length by A1111's `padding` ("" = left as they are;
        PAD_EMPTY: the shorter gets empty-prompt chunks `empty`; PAD_LAST: uncond repeats its last vector or is cut
        to cond's length), and the infotext key that says it happened."""
        cond, uncond = self.cond, self.uncond
        gap = cond.shape[1] - uncond.shape[1]
        if gap == 0 or not padding:
            return self, None
        if padding == PAD_LAST:
            uncond = _repeat_last(uncond, cond.shape[1]) if gap > 0 else uncond[:, : cond.shape[1]]
            return replace(self, uncond=uncond), PADDING_KEYS[PAD_LAST]
        chunks = abs(gap) // empty.shape[1]
        if chunks == 0:
            return self, None
        if gap > 0:
            uncond = with_empty_chunks(uncond, chunks, empty)
        else:
            cond = with_empty_chunks(cond, chunks, empty)
        return replace(self, cond=cond, uncond=uncond), PADDING_KEYS[PAD_EMPTY]


# A1111's ways to give cond and uncond one length: its settings pad_cond_uncond and pad_cond_uncond_v0, and the
# infotext key each writes when it padded.
PAD_EMPTY, PAD_LAST = "empty chunks", "last vector"
PADDING_KEYS = {PAD_EMPTY: "Pad conds", PAD_LAST: "Pad conds v0"}


def _repeat_last(embeds: torch.Tensor, length: int) -> torch.Tensor:
    """`embeds` [n, T, D] made `length` tokens long by repeating its last vector."""
    return torch.cat([embeds, embeds[:, -1:].expand(-1, length - embeds.shape[1], -1)], dim=1)


def with_empty_chunks(embeds: torch.Tensor, chunks: int, empty: torch.Tensor) -> torch.Tensor:
    """`embeds` [n, T, D] followed by `chunks` copies of the empty prompt's chunk `empty` [1, 77, D]."""
    fill = empty.to(embeds.dtype).repeat(1, chunks, 1).expand(embeds.shape[0], -1, -1)
    return torch.cat([embeds, fill], dim=1)


def _stacked(conds: list[Conditioning]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The embeddings of `conds` as one batch, shorter ones padded by repeating their last vector, and their pooled
    outputs (SDXL) when all have one."""
    length = max(c.embeds.shape[1] for c in conds)
    pooled = [c.pooled for c in conds]
    return (
        torch.cat([_repeat_last(c.embeds, length) for c in conds]),
        torch.cat(pooled) if all(p is not None for p in pooled) else None,
    )


def _padded(c: Conditioning, chunks: int, empty: Conditioning) -> Conditioning:
    """`c` made `chunks` chunks long with `empty`'s chunk (its pooled output stays the first chunk's)."""
    if c.chunks >= chunks:
        return c
    return replace(c, embeds=with_empty_chunks(c.embeds, chunks - c.chunks, empty.embeds))


def _zeros(c: Conditioning) -> Conditioning:
    pooled = None if c.pooled is None else torch.zeros_like(c.pooled)
    return replace(c, embeds=torch.zeros_like(c.embeds), pooled=pooled)


def _entry_at(schedule: Schedule, step: int) -> int:
    return next((i for i, (end, _) in enumerate(schedule) if step <= end), len(schedule) - 1)


class StepConditioning:
    """Encodes each distinct text of a batch once, and assembles the UNet batch for any step.

    As in A1111, which encodes a schedule's texts (an AND part's or a negative prompt's) as one batch, the
    shorter texts of a schedule end in the empty prompt's chunks; and a negative prompt that is empty at every
    step is all zeros (text and pooled) for models with a pooled text output (SDXL: A1111's
    force_zero_negative_prompt)."""

    def __init__(
        self,
        encoder: PromptEncoder,
        prompts: list[str],
        negatives: list[str],
        steps: Timeline | int,
        clip_skip: int = 1,
        options: EncoderOptions = EncoderOptions(),
        variant: Hashable = (),
    ) -> None:
        def encode(text: str) -> Conditioning:
            return encoder.encode(text, clip_skip, options, variant)

        self._empty = encode("")

        def scheduled(pairs, negative: bool = False) -> Schedule:
            encoded = [(end, encode(text)) for end, text in pairs]
            if negative and all(text == "" for _, text in pairs) and self._empty.pooled is not None:
                return tuple((end, _zeros(c)) for end, c in encoded)
            chunks = max(c.chunks for _, c in encoded)
            return tuple((end, _padded(c, chunks, self._empty)) for end, c in encoded)

        texts = BatchTexts.of(prompts, negatives, steps)
        self.positive: list[list[tuple[Schedule, float]]] = [
            [(scheduled(pairs), weight) for pairs, weight in parts] for parts in texts.positive
        ]
        self.negative: list[Schedule] = [scheduled(pairs, negative=True) for pairs in texts.negative]
        self._device = self._empty.embeds.device
        self._last: tuple[tuple, StepBatch] | None = None

    def _schedules(self) -> list[Schedule]:
        return self.negative + [schedule for parts in self.positive for schedule, _ in parts]

    @property
    def embeddings_used(self) -> list[str]:
        """Textual inversion embeddings any of the texts used."""
        return list(dict.fromkeys(name for s in self._schedules() for _, c in s for name in c.embeddings_used))

    @property
    def empty_chunk(self) -> torch.Tensor:
        """The empty prompt's conditioning, one chunk (A1111 pads with it under pad_cond_uncond)."""
        return self._empty.embeds

    def at(self, step: int) -> StepBatch:
        """The batch for sampling step `step` (0-based); rebuilt only when the selection changes."""
        selection = tuple(_entry_at(s, step) for s in self._schedules())
        if self._last is not None and self._last[0] == selection:
            return self._last[1]
        picked = [s[i][1] for s, i in zip(self._schedules(), selection)]
        images = len(self.negative)
        (uncond, uncond_pooled), (cond, cond_pooled) = _stacked(picked[:images]), _stacked(picked[images:])
        batch = StepBatch(
            cond=cond,
            uncond=uncond,
            cond_pooled=cond_pooled,
            uncond_pooled=uncond_pooled,
            part_image=torch.tensor([i for i, parts in enumerate(self.positive) for _ in parts], device=self._device),
            part_weight=torch.tensor([w for parts in self.positive for _, w in parts], device=self._device),
        )
        self._last = (selection, batch)
        return batch
