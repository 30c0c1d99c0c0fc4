"""What one request may ask of the server, each limit a setting (Settings → System): image size, images
per job, sampling steps, prompt length and prompt chunks, images a script plans and the size of its grid,
input images and upload size. A request over a limit is refused with a message naming the setting, before
the work (or the allocation) it would cost starts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from modules.errors import UserError
from modules.jobs.generation_params import GenerationParams
from modules.jobs.hires_fix import hires_size, second_pass_params
from modules.options import OPTIONS
from modules.prompting.step_conditioning import BatchTexts

# The generation fields a user types text into: the prompts.
_TEXT_FIELDS = tuple(
    (f.name, spec.label or f.name) for f, spec in GenerationParams.fields() if spec.widget == "textbox"
)


def _setting(key: str) -> str:
    return f"(setting: {OPTIONS[key].label})"


@dataclass(frozen=True)
class PromptCost:
    """What a batch's prompts cost the text encoder and the UNet, in 75-token chunks. Each image's AND parts
    are padded to the batch's longest text, so the UNet's conditioning is `and_parts × longest` chunks wide
    per image; `encoded` is what the text encoder runs (and keeps) for every distinct text at every step.
    `partial`: counting stopped once over a limit, so the numbers are lower bounds."""

    and_parts: int
    longest: int
    encoded: int
    partial: bool = False

    @property
    def chunks(self) -> int:
        return max(self.and_parts * self.longest, self.encoded)


def prompt_cost(texts: BatchTexts, chunks_of: Callable[[str], int], stop_above: int | None = None) -> PromptCost:
    """The cost of `texts`, counting each distinct text's chunks with `chunks_of` (the model's tokenizer).
    Counting stops as soon as the cost passes `stop_above`: every text is at least one chunk, so a prompt
    with more AND parts or distinct texts than that is refused before any text is tokenized."""
    distinct = texts.distinct()
    parts = texts.and_parts
    if stop_above is not None and max(parts, len(distinct)) > stop_above:
        return PromptCost(parts, 1, len(distinct), partial=True)
    longest = encoded = 0
    for number, text in enumerate(distinct, start=1):
        chunks = chunks_of(text)
        longest, encoded = max(longest, chunks), encoded + chunks
        if stop_above is not None and max(parts * longest, encoded) > stop_above and number < len(distinct):
            return PromptCost(parts, longest, encoded, partial=True)
    return PromptCost(parts, longest, encoded)


def output_size(params: GenerationParams) -> tuple[int, int]:
    """The size of the images a job with `params` makes: with hires fix, the second pass's."""
    if not params.enable_hr:
        return params.width, params.height
    size = hires_size(params)
    return size.width, size.height


def _amount(count: int) -> str:
    """`count` with thousands separators, or its order of magnitude when it is astronomical."""
    return f"{count:,}" if count < 10**15 else f"about 10^{int((count.bit_length() - 1) * math.log10(2))}"


@dataclass(frozen=True)
class Limits:
    """The limits in force; each field is the setting of the same name."""

    max_pixels: int = OPTIONS["max_pixels"].default
    max_batch_images: int = OPTIONS["max_batch_images"].default
    max_steps: int = OPTIONS["max_steps"].default
    max_prompt_length: int = OPTIONS["max_prompt_length"].default
    max_prompt_chunks: int = OPTIONS["max_prompt_chunks"].default
    max_grid_cells: int = OPTIONS["max_grid_cells"].default
    img_max_size_mp: int = OPTIONS["img_max_size_mp"].default
    max_input_images: int = OPTIONS["max_input_images"].default
    max_upload_bytes: int = OPTIONS["max_upload_bytes"].default

    @classmethod
    def from_options(cls, opts: Any) -> Limits:
        """The limits the settings `opts` hold now (a job's override_settings included)."""
        return cls(**{f.name: getattr(opts, f.name) for f in fields(cls)})

    def check_generation(self, params: GenerationParams) -> None:
        """Refuse a txt2img/img2img job over any limit (UserError)."""
        self.check_pixels(params.width, params.height)
        images = params.batch_size * params.n_iter
        if images > self.max_batch_images:
            raise UserError(
                f"Batch size {params.batch_size} × batch count {params.n_iter} is {images} images, more "
                f"than the limit of {self.max_batch_images} {_setting('max_batch_images')}"
            )
        for steps, label in ((params.steps, "Sampling steps"), (params.hr_second_pass_steps, "Hires steps")):
            if steps > self.max_steps:
                raise UserError(f"{label} {steps} is more than the limit of {self.max_steps} {_setting('max_steps')}")
        for name, label in _TEXT_FIELDS:
            self.check_prompt(getattr(params, name), label)

    def check_pixels(self, width: int, height: int, what: str = "") -> None:
        """Refuse an image of width x height over max_pixels; `what` says which image (UserError)."""
        pixels = width * height
        if pixels > self.max_pixels:
            raise UserError(
                f"{what}{': ' if what else ''}{width}x{height} is {pixels:,} pixels, more than the limit "
                f"of {self.max_pixels:,} {_setting('max_pixels')}"
            )

    def check_prompt(self, text: str, label: str = "Prompt") -> None:
        """Refuse a prompt longer than the limit (UserError)."""
        if len(text) > self.max_prompt_length:
            raise UserError(
                f"{label} is {len(text):,} characters long, more than the limit of "
                f"{self.max_prompt_length:,} {_setting('max_prompt_length')}"
            )

    def check_prompt_chunks(
        self,
        prompts: Sequence[str],
        negatives: Sequence[str],
        steps: int,
        chunks_of: Callable[[str], int],
        label: str = "The prompt",
    ) -> None:
        """Refuse a batch whose prompts cost more than max_prompt_chunks (see PromptCost), before any of
        them is encoded (UserError)."""
        cost = prompt_cost(BatchTexts.of(list(prompts), list(negatives), steps), chunks_of, self.max_prompt_chunks)
        if cost.chunks > self.max_prompt_chunks:
            at_least = "at least " if cost.partial else ""
            raise UserError(
                f"{label} needs {at_least}{cost.chunks:,} chunks of 75 tokens, more than the limit of "
                f"{self.max_prompt_chunks:,} {_setting('max_prompt_chunks')}: {cost.and_parts:,} AND part(s), each "
                f"padded to the longest text's {at_least}{cost.longest:,} chunk(s), and {at_least}{cost.encoded:,} "
                f"chunk(s) to encode for its texts at every step, negative prompt included"
            )

    def check_job_prompts(self, params: GenerationParams, chunks_of: Callable[[str], int]) -> None:
        """check_prompt_chunks for a job's prompts, and with hires fix for its second pass's too."""
        self.check_prompt_chunks([params.prompt], [params.negative_prompt], params.steps, chunks_of)
        if params.enable_hr:
            second = second_pass_params(params)
            self.check_prompt_chunks(
                [second.prompt], [second.negative_prompt], second.steps, chunks_of, "The hires prompt"
            )

    def check_planned_images(self, count: int, what: str) -> None:
        """Refuse a script's plan of `count` images over max_grid_cells; `what` describes the plan (UserError)."""
        if count > self.max_grid_cells:
            raise UserError(
                f"{what} would make {_amount(count)} images, more than the limit of "
                f"{self.max_grid_cells:,} {_setting('max_grid_cells')}"
            )

    def check_grid(self, cells: int, width: int, height: int, what: str) -> None:
        """Refuse a grid of `cells` images of width x height larger than img_max_size_mp megapixels (UserError)."""
        megapixels = cells * width * height / 1_000_000
        if megapixels > self.img_max_size_mp:
            raise UserError(
                f"{what}: {cells:,} images of {width}x{height} make a grid of {math.ceil(megapixels):,} "
                f"megapixels, more than the limit of {self.img_max_size_mp:,} "
                f"{_setting('img_max_size_mp')}"
            )

    def check_input_count(self, count: int, name: str) -> None:
        """Refuse more than max_input_images images in `name` (UserError)."""
        if count > self.max_input_images:
            raise UserError(
                f"{name} holds {count:,} images, more than the limit of {self.max_input_images:,} "
                f"{_setting('max_input_images')}"
            )

    def check_input_pixels(self, sizes: Sequence[tuple[str, int, int]]) -> None:
        """Refuse input images (name, width, height; read from their headers) that together hold more than
        max_input_images × max_pixels pixels: one large photo may come in (img2img resizes it), but not
        several, and decoding them all stays within that many pixels (UserError)."""
        budget = self.max_input_images * self.max_pixels
        total = sum(width * height for _, width, height in sizes)
        if total > budget:
            listed = ", ".join(f"{name} {width}x{height}" for name, width, height in sizes[:4])
            more = f" and {len(sizes) - 4} more" if len(sizes) > 4 else ""
            raise UserError(
                f"The input images ({listed}{more}) hold {total:,} pixels together, more than "
                f"{budget:,}: {_setting('max_input_images')} × {self.max_pixels:,} "
                f"{_setting('max_pixels')}"
            )

    def check_upload(self, size: int, name: str) -> None:
        """Refuse an uploaded image of `size` bytes over the limit (UserError naming `name`)."""
        if size > self.max_upload_bytes:
            raise UserError(
                f"{name} is {size:,} bytes, more than the limit of {self.max_upload_bytes:,} "
                f"{_setting('max_upload_bytes')}"
            )
