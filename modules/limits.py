"""What one request may ask of the server, each limit a setting (Settings → System): image size, images
per job, sampling steps, prompt length, upload size. A request over a limit is refused with a message
naming the setting, before any work starts."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from modules.errors import UserError
from modules.generation_params import GenerationParams
from modules.options import OPTIONS

# The generation fields a user types text into: the prompts.
_TEXT_FIELDS = tuple((f.name, spec.label) for f, spec in GenerationParams.fields() if spec.widget == "textbox")


def _setting(key: str) -> str:
    return f"(setting: {OPTIONS[key].label})"


@dataclass(frozen=True)
class Limits:
    """The limits in force; each field is the setting of the same name."""

    max_pixels: int = OPTIONS["max_pixels"].default
    max_batch_images: int = OPTIONS["max_batch_images"].default
    max_steps: int = OPTIONS["max_steps"].default
    max_prompt_length: int = OPTIONS["max_prompt_length"].default
    max_upload_bytes: int = OPTIONS["max_upload_bytes"].default

    @classmethod
    def from_options(cls, opts: Any) -> "Limits":
        """The limits the settings `opts` hold now (a job's override_settings included)."""
        return cls(**{f.name: getattr(opts, f.name) for f in fields(cls)})

    def check_generation(self, params: GenerationParams) -> None:
        """Refuse a txt2img/img2img job over any limit (UserError)."""
        pixels = params.width * params.height
        if pixels > self.max_pixels:
            raise UserError(f"{params.width}x{params.height} is {pixels:,} pixels, more than the limit of "
                            f"{self.max_pixels:,} {_setting('max_pixels')}")
        images = params.batch_size * params.n_iter
        if images > self.max_batch_images:
            raise UserError(f"Batch size {params.batch_size} × batch count {params.n_iter} is {images} images, more "
                            f"than the limit of {self.max_batch_images} {_setting('max_batch_images')}")
        for steps, label in ((params.steps, "Sampling steps"), (params.hr_second_pass_steps, "Hires steps")):
            if steps > self.max_steps:
                raise UserError(f"{label} {steps} is more than the limit of {self.max_steps} "
                                f"{_setting('max_steps')}")
        for name, label in _TEXT_FIELDS:
            self.check_prompt(getattr(params, name), label)

    def check_prompt(self, text: str, label: str = "Prompt") -> None:
        """Refuse a prompt longer than the limit (UserError)."""
        if len(text) > self.max_prompt_length:
            raise UserError(f"{label} is {len(text):,} characters long, more than the limit of "
                            f"{self.max_prompt_length:,} {_setting('max_prompt_length')}")

    def check_upload(self, size: int, name: str) -> None:
        """Refuse an uploaded image of `size` bytes over the limit (UserError naming `name`)."""
        if size > self.max_upload_bytes:
            raise UserError(f"{name} is {size:,} bytes, more than the limit of {self.max_upload_bytes:,} "
                            f"{_setting('max_upload_bytes')}")
