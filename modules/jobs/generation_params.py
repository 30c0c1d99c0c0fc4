"""The one description of a generation. UI controls, infotext and ui-config.json derive from it."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from modules.imaging.image_resize import RESIZE_MODES
from modules.masking import INPAINT_AREAS, MASK_MODES, MASKED_CONTENT

Widget = Literal["textbox", "slider", "number", "dropdown", "checkbox", "radio"]
JOBS = ("txt2img", "img2img", "inpaint", "hires")  # "hires": txt2img with hires fix
USE_SAME_SAMPLER = "Use same sampler"
USE_SAME_SCHEDULER = "Use same scheduler"
USE_SAME_CHECKPOINT = "Use same checkpoint"
NO_REFINER = "None"


@dataclass(frozen=True)
class FieldSpec:
    """How a generation field is shown, bounded and written into infotext.

    `label` is A1111's control label (it also forms ui-config.json keys); `infotext` is the
    key in the parameters line (`Size-1`/`Size-2` pairs are written as one `WxH` value), written
    for the kinds of job in `jobs`, and, with `omit_default`, only when it differs from the
    default, and with `when`, only when `when(params)` is true. A flag field with `present_if` is
    read back as true when any of those keys is in the infotext, else false (the job itself writes
    those keys unless the field has an `infotext` key).
    A field with `choices` holds an index into them (as A1111's API does); the page and the
    infotext show the choice's label. `tab_values` gives a page default that differs from the
    field's default on some tabs.
    """

    label: str | None = None
    infotext: str | None = None
    widget: Widget = "number"
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    tabs: tuple[str, ...] = ("txt2img", "img2img")
    jobs: tuple[str, ...] = JOBS
    omit_default: bool = False
    choices: tuple[str, ...] | None = None
    when: Callable[[Any], bool] | None = None
    present_if: tuple[str, ...] = ()
    tab_values: tuple[tuple[str, Any], ...] = ()


IMG2IMG = ("img2img",)
TXT2IMG = ("txt2img",)
INPAINT = ("inpaint",)
HIRES = ("hires",)


def _hires_resize(p: Any) -> bool:
    return bool(p.hr_resize_x or p.hr_resize_y)


def _varied(p: Any) -> bool:
    return p.subseed_strength > 0


def _seed_resized(p: Any) -> bool:
    return p.seed_resize_from_w > 0 and p.seed_resize_from_h > 0


def _field(default: Any, **spec: Any) -> Any:
    return field(default=default, metadata={"spec": FieldSpec(**spec)})


@dataclass
class GenerationParams:
    """A txt2img or img2img job's settings (images travel beside it). Field names are A1111's API
    names; order is the order on the page."""

    prompt: str = _field("", label="Prompt", widget="textbox")
    negative_prompt: str = _field("", label="Negative prompt", widget="textbox")
    styles: tuple = _field((), label="Styles", widget="dropdown")
    sampler_name: str = _field("DPM++ 2M", label="Sampling method", infotext="Sampler", widget="dropdown")
    scheduler: str = _field("Automatic", label="Schedule type", infotext="Schedule type", widget="dropdown")
    steps: int = _field(20, label="Sampling steps", infotext="Steps", widget="slider", minimum=1, maximum=150, step=1)
    width: int = _field(512, label="Width", infotext="Size-1", widget="slider", minimum=64, maximum=2048, step=8)
    height: int = _field(512, label="Height", infotext="Size-2", widget="slider", minimum=64, maximum=2048, step=8)
    n_iter: int = _field(1, label="Batch count", widget="slider", minimum=1, maximum=100, step=1)
    batch_size: int = _field(1, label="Batch size", widget="slider", minimum=1, maximum=8, step=1)
    cfg_scale: float = _field(
        7.0, label="CFG Scale", infotext="CFG scale", widget="slider", minimum=1.0, maximum=30.0, step=0.5
    )
    seed: int = _field(-1, label="Seed", infotext="Seed", widget="number")
    subseed: int = _field(-1, label="Variation seed", infotext="Variation seed", widget="number", when=_varied)
    subseed_strength: float = _field(
        0.0,
        label="Variation strength",
        infotext="Variation seed strength",
        widget="slider",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
        omit_default=True,
    )
    seed_resize_from_w: int = _field(
        0,
        label="Resize seed from width",
        infotext="Seed resize from-1",
        widget="slider",
        minimum=0,
        maximum=2048,
        step=8,
        when=_seed_resized,
    )
    seed_resize_from_h: int = _field(
        0,
        label="Resize seed from height",
        infotext="Seed resize from-2",
        widget="slider",
        minimum=0,
        maximum=2048,
        step=8,
        when=_seed_resized,
    )
    clip_skip: int = _field(1, infotext="Clip skip", minimum=1, maximum=12, step=1, tabs=(), omit_default=True)
    restore_faces: bool = _field(False, label="Restore faces", widget="checkbox", present_if=("Face restoration",))
    tiling: bool = _field(
        False, label="Tiling", infotext="Tiling", widget="checkbox", omit_default=True, present_if=("Tiling",)
    )
    enable_hr: bool = _field(
        False,
        label="Hires. fix",
        widget="checkbox",
        tabs=TXT2IMG,
        present_if=("Hires upscale", "Hires resize", "Hires upscaler"),
    )
    denoising_strength: float = _field(
        0.75,
        label="Denoising strength",
        infotext="Denoising strength",
        widget="slider",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
        jobs=("img2img", "inpaint", "hires"),
        tab_values=(("txt2img", 0.7),),
    )
    hr_scale: float = _field(
        2.0,
        label="Upscale by",
        infotext="Hires upscale",
        widget="slider",
        minimum=1.0,
        maximum=4.0,
        step=0.05,
        tabs=TXT2IMG,
        jobs=HIRES,
        when=lambda p: not _hires_resize(p),
    )
    hr_resize_x: int = _field(
        0,
        label="Resize width to",
        infotext="Hires resize-1",
        widget="slider",
        minimum=0,
        maximum=2048,
        step=8,
        tabs=TXT2IMG,
        jobs=HIRES,
        when=_hires_resize,
    )
    hr_resize_y: int = _field(
        0,
        label="Resize height to",
        infotext="Hires resize-2",
        widget="slider",
        minimum=0,
        maximum=2048,
        step=8,
        tabs=TXT2IMG,
        jobs=HIRES,
        when=_hires_resize,
    )
    hr_second_pass_steps: int = _field(
        0,
        label="Hires steps",
        infotext="Hires steps",
        widget="slider",
        minimum=0,
        maximum=150,
        step=1,
        tabs=TXT2IMG,
        jobs=HIRES,
        omit_default=True,
    )
    hr_upscaler: str = _field(
        "Latent", label="Upscaler", infotext="Hires upscaler", widget="dropdown", tabs=TXT2IMG, jobs=HIRES
    )
    hr_checkpoint_name: str = _field(
        USE_SAME_CHECKPOINT,
        label="Hires checkpoint",
        infotext="Hires checkpoint",
        widget="dropdown",
        tabs=TXT2IMG,
        jobs=HIRES,
        when=lambda p: p.hires_checkpoint is not None,
    )
    hr_sampler_name: str = _field(
        USE_SAME_SAMPLER,
        label="Hires sampling method",
        infotext="Hires sampler",
        widget="dropdown",
        tabs=TXT2IMG,
        jobs=HIRES,
        omit_default=True,
    )
    hr_scheduler: str = _field(
        USE_SAME_SCHEDULER,
        label="Hires schedule type",
        infotext="Hires schedule type",
        widget="dropdown",
        tabs=TXT2IMG,
        jobs=HIRES,
        omit_default=True,
    )
    hr_prompt: str = _field(
        "",
        label="Hires prompt",
        infotext="Hires prompt",
        widget="textbox",
        tabs=TXT2IMG,
        jobs=HIRES,
        when=lambda p: p.hr_prompt not in ("", p.prompt),
    )
    hr_negative_prompt: str = _field(
        "",
        label="Hires negative prompt",
        infotext="Hires negative prompt",
        widget="textbox",
        tabs=TXT2IMG,
        jobs=HIRES,
        when=lambda p: p.hr_negative_prompt not in ("", p.negative_prompt),
    )
    refiner_checkpoint: str = _field(
        NO_REFINER, label="Checkpoint", infotext="Refiner", widget="dropdown", when=lambda p: p.refiner is not None
    )
    refiner_switch_at: float = _field(
        0.8,
        label="Switch at",
        infotext="Refiner switch at",
        widget="slider",
        minimum=0.01,
        maximum=1.0,
        step=0.01,
        when=lambda p: p.refiner is not None,
    )
    resize_mode: int = _field(0, label="Resize mode", widget="radio", tabs=IMG2IMG, choices=RESIZE_MODES)
    mask_blur: int = _field(
        4,
        label="Mask blur",
        infotext="Mask blur",
        widget="slider",
        minimum=0,
        maximum=64,
        step=1,
        tabs=IMG2IMG,
        jobs=INPAINT,
        when=lambda p: p.vertical_mask_blur in (-1, p.mask_blur),
    )
    # API-only, as in A1111: a vertical blur of its own (the API's mask_blur_y; -1: mask_blur, which is then
    # both), and mask_round false for a soft latent mask where the blurred edge is only partly repainted.
    vertical_mask_blur: int = _field(-1, minimum=-1, maximum=64, step=1, tabs=(), jobs=INPAINT)
    mask_round: bool = _field(True, widget="checkbox", tabs=(), jobs=INPAINT)
    inpainting_mask_invert: int = _field(
        0, label="Mask mode", infotext="Mask mode", widget="radio", tabs=IMG2IMG, jobs=INPAINT, choices=MASK_MODES
    )
    inpainting_fill: int = _field(
        1,
        label="Masked content",
        infotext="Masked content",
        widget="radio",
        tabs=IMG2IMG,
        jobs=INPAINT,
        choices=MASKED_CONTENT,
    )
    inpaint_full_res: int = _field(
        0,
        label="Inpaint area",
        infotext="Inpaint area",
        widget="radio",
        tabs=IMG2IMG,
        jobs=INPAINT,
        choices=INPAINT_AREAS,
    )
    inpaint_full_res_padding: int = _field(
        32,
        label="Only masked padding, pixels",
        infotext="Masked area padding",
        widget="slider",
        minimum=0,
        maximum=256,
        step=4,
        tabs=IMG2IMG,
        jobs=INPAINT,
    )

    @property
    def hires_checkpoint(self) -> str | None:
        """The checkpoint hires fix's second pass runs on when it names one of its own, else None
        ("Use same checkpoint"; A1111's API also sends null, "" or "None")."""
        own = self.enable_hr and self.hr_checkpoint_name not in ("", "None", USE_SAME_CHECKPOINT)
        return self.hr_checkpoint_name if own else None

    @property
    def refiner(self) -> str | None:
        """The checkpoint sampling switches to after `refiner_switch_at` of the steps, or None for no
        refiner ("None"; A1111's API also sends null or "")."""
        return None if self.refiner_checkpoint in ("", NO_REFINER) else self.refiner_checkpoint

    @property
    def job_checkpoints(self) -> dict[str, str]:
        """The checkpoints the job runs on besides the loaded one (hires fix's and the refiner's), keyed by the
        field that names each."""
        named = {"hr_checkpoint_name": self.hires_checkpoint, "refiner_checkpoint": self.refiner}
        return {field: name for field, name in named.items() if name}

    @classmethod
    def fields(cls) -> Iterator[tuple[dataclasses.Field, FieldSpec]]:
        """Each dataclass field with its spec, in declaration order."""
        for f in dataclasses.fields(cls):
            yield f, f.metadata["spec"]

    @classmethod
    @functools.cache
    def field_names(cls) -> frozenset[str]:
        """The names of all the fields."""
        return frozenset(f.name for f, _ in cls.fields())

    @classmethod
    def spec(cls, name: str) -> FieldSpec:
        return next(spec for f, spec in cls.fields() if f.name == name)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationParams:
        """Build from a mapping, ignoring unknown keys and coercing to each field's type."""
        names = cls.field_names()
        return cls(
            **{name: cls.coerce(name, value) for name, value in values.items() if name in names and value is not None}
        )

    @classmethod
    def field_type(cls, name: str) -> type:
        """The Python type of field `name` (the type of its default)."""
        return type(next(f.default for f, _ in cls.fields() if f.name == name))

    @classmethod
    def coerce(cls, name: str, value: Any) -> Any:
        """Convert `value` to the type of field `name`; a choice field also takes its label.
        Raises ValueError with a clear message."""
        choices = cls.spec(name).choices
        if choices and isinstance(value, str) and not value.strip().lstrip("-").isdigit():
            lowered = [c.lower() for c in choices]
            if value.strip().lower() not in lowered:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
            return lowered.index(value.strip().lower())
        coerced = _coerce(name, cls.field_type(name), value)
        if choices and not 0 <= coerced < len(choices):
            raise ValueError(f"{name} must be between 0 and {len(choices) - 1}, got {coerced}")
        return coerced

    @classmethod
    def display(cls, name: str, value: Any) -> Any:
        """The value as the page and the infotext show it: a choice's label, else the value."""
        choices = cls.spec(name).choices
        if isinstance(value, tuple):
            return list(value)
        return choices[value] if choices else value


def _coerce(name: str, kind: type, value: Any) -> Any:
    try:
        if kind is int:
            number = float(value)
            if not math.isfinite(number) or number != int(number):
                raise ValueError
            return int(number)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
        if kind is tuple:
            items = [value] if isinstance(value, str) else list(value)
            return tuple(str(item) for item in items if str(item))
        if kind is bool:
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return value.strip().lower() in ("true", "1")
            return bool(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {kind.__name__}, got {value!r}") from None
    return value
