"""The Extras tab's job: restore faces (GFPGAN, then CodeFormer) and upscale (upscaler 1, with upscaler 2
blended over it) one image or many, saving each with an `extras` PNG text chunk in A1111's format."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from modules import images
from modules.core.engine import JobContext
from modules.errors import DiskFull, UserError
from modules.face_restoration import MissingWeightsError, missing_weights_message
from modules.imaging.image_inputs import header_size, normalize_input
from modules.imaging.image_tools import ImageTools
from modules.jobs.img2img_batch import IMAGE_SUFFIXES
from modules.jobs.infotext import quote
from modules.options import OPTIONS

log = logging.getLogger(__name__)

RESIZE_MODES = ("Scale by", "Scale to")
SCALE_BY, SCALE_TO = range(len(RESIZE_MODES))
NO_UPSCALER = "None"
Widget = Literal["slider", "dropdown", "checkbox", "hidden"]


@dataclass(frozen=True)
class ExtrasField:
    """How an extras field is shown: A1111's label, the widget and its range."""

    label: str
    widget: Widget = "slider"
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None


def _field(
    default: Any,
    label: str,
    widget: Widget = "slider",
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
) -> Any:
    return field(default=default, metadata={"spec": ExtrasField(label, widget, minimum, maximum, step)})


@dataclass
class ExtrasParams:
    """The Extras tab's settings, with A1111's API field names, in the order of the page's endpoint."""

    resize_mode: int = _field(SCALE_BY, "Resize mode", "hidden")  # an index into RESIZE_MODES
    upscaling_resize: float = _field(2.0, "Resize", minimum=1.0, maximum=8.0, step=0.05)
    upscaling_resize_w: int = _field(512, "Width", minimum=64, maximum=8192, step=8)
    upscaling_resize_h: int = _field(512, "Height", minimum=64, maximum=8192, step=8)
    upscaling_crop: bool = _field(True, "Crop to fit", "checkbox")
    upscaler_1: str = _field(NO_UPSCALER, "Upscaler 1", "dropdown")
    upscaler_2: str = _field(NO_UPSCALER, "Upscaler 2", "dropdown")
    extras_upscaler_2_visibility: float = _field(0.0, "Upscaler 2 visibility", minimum=0.0, maximum=1.0, step=0.001)
    gfpgan_visibility: float = _field(0.0, "GFPGAN visibility", minimum=0.0, maximum=1.0, step=0.001)
    codeformer_visibility: float = _field(0.0, "CodeFormer visibility", minimum=0.0, maximum=1.0, step=0.001)
    codeformer_weight: float = _field(
        0.0, "CodeFormer weight (0 = maximum effect, 1 = minimum effect)", minimum=0.0, maximum=1.0, step=0.001
    )
    upscale_first: bool = _field(False, "Upscale before restoring faces", "checkbox")

    @classmethod
    def fields(cls) -> Iterator[tuple[dataclasses.Field, ExtrasField]]:
        """Each field with its spec, in declaration order."""
        for f in dataclasses.fields(cls):
            yield f, f.metadata["spec"]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExtrasParams:
        """Build from field name -> value (page or API values), converting types; missing fields keep
        their defaults. Unknown names and out-of-range values give a UserError."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = set(values) - set(defaults)
        if unknown:
            raise UserError(f"Unknown extras field(s): {', '.join(sorted(unknown))}")
        converted = {}
        for name, value in values.items():
            kind = type(defaults[name])
            try:
                converted[name] = kind(round(float(value))) if kind is int else kind(value)
            except (TypeError, ValueError):
                raise UserError(f"{name} must be a {kind.__name__}, got {value!r}") from None
        params = cls(**converted)
        params.validate()
        return params

    def validate(self) -> None:
        """Refuse values no upscaler or restorer can use."""
        if self.resize_mode not in (SCALE_BY, SCALE_TO):
            raise UserError(
                f"resize_mode must be {SCALE_BY} (scale by) or {SCALE_TO} (scale to), got {self.resize_mode}"
            )
        if not self.upscaling_resize > 0:
            raise UserError(f"Resize must be above 0, got {self.upscaling_resize}")
        if self.upscaling_resize_w < 1 or self.upscaling_resize_h < 1:
            raise UserError(
                f"Width and height must be at least 1, got {self.upscaling_resize_w}x{self.upscaling_resize_h}"
            )
        for name in ("extras_upscaler_2_visibility", "gfpgan_visibility", "codeformer_visibility", "codeformer_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"{name} must be between 0 and 1, got {getattr(self, name)}")

    @property
    def upscaling(self) -> bool:
        return self.upscaler_1 != NO_UPSCALER

    @property
    def second_upscaler(self) -> bool:
        return self.upscaling and self.upscaler_2 != NO_UPSCALER and self.extras_upscaler_2_visibility > 0

    def upscaled_size(self, width: int, height: int) -> tuple[int, int]:
        """The size a width x height source is upscaled to: by the factor, or (scale to) just covering
        width x height, aspect kept (and cropped to it afterwards)."""
        if self.resize_mode == SCALE_BY:
            scale = self.upscaling_resize
            return max(1, round(width * scale)), max(1, round(height * scale))
        scale = max(self.upscaling_resize_w / width, self.upscaling_resize_h / height)
        return max(self.upscaling_resize_w, round(width * scale)), max(self.upscaling_resize_h, round(height * scale))

    def check_result_size(self, width: int, height: int, max_pixels: int, name: str = "") -> None:
        """Refuse a width x height source (`name`) whose result (the upscaled size, or with no upscaler its own
        size) would be over `max_pixels`, before anything is decoded or processed (UserError)."""
        if self.upscaling:
            width, height = self.upscaled_size(width, height)
        if width * height > max_pixels:
            refused = "Upscaling refused: the result" if self.upscaling else "The result"
            raise UserError(
                f"{name}{': ' if name else ''}{refused} would be {width}x{height} ({width * height:,} "
                f"pixels), over the limit of {max_pixels:,} (setting: {OPTIONS['max_pixels'].label})"
            )


@dataclass(frozen=True)
class ExtrasSettings:
    """Settings an extras job reads, captured when it is submitted. `save_dir` None: don't save."""

    save_dir: Path | None = None
    max_pixels: int = 2048 * 2048
    tile: int = 192
    overlap: int = 8
    save_format: images.SaveFormat = images.SaveFormat()


@dataclass
class ExtrasResult:
    """The processed images with each one's `extras` text, where they were saved, and warnings."""

    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False


def _number(value: float) -> float | int:
    value = round(float(value), 3)
    return int(value) if value.is_integer() else value


def create_infotext(params: ExtrasParams) -> str:
    """The `extras` chunk, keys and order as A1111 writes them."""
    entries: dict[str, Any] = {}
    if params.upscaling:
        if params.resize_mode == SCALE_BY:
            entries["Postprocess upscale by"] = _number(params.upscaling_resize)
        else:
            size = f"{params.upscaling_resize_w}x{params.upscaling_resize_h}"
            entries["Postprocess upscale to"] = size
            if params.upscaling_crop:
                entries["Postprocess crop to"] = size
        entries["Postprocess upscaler"] = params.upscaler_1
        if params.second_upscaler:
            entries["Postprocess upscaler 2"] = params.upscaler_2
            entries["Postprocess upscaler 2 visibility"] = _number(params.extras_upscaler_2_visibility)
    if params.gfpgan_visibility > 0:
        entries["GFPGAN visibility"] = _number(params.gfpgan_visibility)
    if params.codeformer_visibility > 0:
        entries["CodeFormer visibility"] = _number(params.codeformer_visibility)
        entries["CodeFormer weight"] = _number(params.codeformer_weight)
    return ", ".join(f"{key}: {quote(value)}" for key, value in entries.items())


def images_in_folder(folder: Path) -> list[Path]:
    """The image files directly in `folder`, by name."""
    if not folder.is_dir():
        raise UserError(f"The input directory {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class ExtrasJob:
    """Runs on the engine worker: checks the tools once, then processes each input in turn."""

    def __init__(
        self, tools: ImageTools, params: ExtrasParams, settings: ExtrasSettings, ctx: JobContext | None = None
    ) -> None:
        self.tools = tools
        self.params = params
        self.settings = settings
        self.ctx = ctx

    def run(
        self, inputs: Sequence[Image.Image | Path], output_dir: Path | None = None, keep_images: bool = True
    ) -> ExtrasResult:
        """Process `inputs` (images, or files opened here). Saved to `output_dir` if given, else to a dated
        folder under settings.save_dir. With one input a problem with it raises; in a batch the file is
        skipped with a warning. `keep_images` False returns paths only (large batches)."""
        self.check_tools()
        result = ExtrasResult()
        if not inputs:
            result.warnings.append("No images to process")
        if self.ctx:
            self.ctx.set_job_count(len(inputs))
        for index, source in enumerate(inputs):
            if self.ctx:
                if self.ctx.interrupted:
                    break
                self.ctx.begin_batch(index, 1)
            name = source.stem if isinstance(source, Path) else ""
            try:
                if isinstance(source, Path):  # the result's size is checked before the file is decoded
                    self.params.check_result_size(*header_size(source, source.name), self.settings.max_pixels)
                    image = images.open_image(source)
                else:
                    image = source
                processed, notes = self.process(image)
            except UserError as exc:
                if len(inputs) == 1:
                    raise
                message = f"Skipped {name}: {exc}"
                log.warning(message)
                result.warnings.append(message)
                continue
            result.warnings.extend(n if len(inputs) == 1 else f"{name}: {n}" for n in notes)
            text = create_infotext(self.params)
            try:
                path = self.save(processed, images.read_infotext(image), text, name, output_dir)
            except DiskFull as exc:  # the image is still in the answer
                log.error("%s", exc)
                path = None
                if str(exc) not in result.warnings:
                    result.warnings.append(str(exc))
            if path is not None:
                result.paths.append(path)
            if keep_images:
                result.images.append(processed)
            result.infotexts.append(text)
            if self.ctx:
                self.ctx.report_step(1)
        result.interrupted = bool(self.ctx and self.ctx.interrupted)
        return result

    def check_tools(self) -> None:
        """Fail before the first image when a chosen upscaler or restorer can't be used."""
        p, upscalers = self.params, self.tools.upscalers
        chosen = [p.upscaler_1] if p.upscaling else []
        chosen += [p.upscaler_2] if p.second_upscaler else []
        for name in chosen:
            if name in upscalers.model_files() or name not in upscalers.names():
                upscalers.load(name)  # raises for unknown names and files that are not upscalers
        for model, visibility in (("GFPGAN", p.gfpgan_visibility), ("CodeFormer", p.codeformer_visibility)):
            missing = self.tools.face_restorers.get(model).missing_files() if visibility > 0 else []
            if missing:
                raise MissingWeightsError(missing_weights_message(model, missing))

    def process(self, image: Image.Image) -> tuple[Image.Image, list[str]]:
        """One image through face restoration and upscaling (in A1111's order unless upscale_first); refused
        first when the result would be over max_pixels."""
        image = normalize_input(image)
        self.params.check_result_size(image.width, image.height, self.settings.max_pixels)
        notes: list[str] = []
        steps = (self.upscale, self.restore_faces) if self.params.upscale_first else (self.restore_faces, self.upscale)
        for step in steps:
            image = step(image, notes)
        return image, notes

    def restore_faces(self, image: Image.Image, notes: list[str]) -> Image.Image:
        p, restorers = self.params, self.tools.face_restorers
        if p.gfpgan_visibility > 0:
            image, note = restorers.get("GFPGAN").restore(image, p.gfpgan_visibility)
            notes += [note] if note else []
        if p.codeformer_visibility > 0:
            image, note = restorers.get("CodeFormer").restore(image, p.codeformer_visibility, p.codeformer_weight)
            notes += [note] if note and note not in notes else []
        return image

    def upscale(self, image: Image.Image, notes: list[str]) -> Image.Image:
        p = self.params
        if not p.upscaling:
            return image
        width, height = p.upscaled_size(image.width, image.height)
        upscalers, tile, overlap = self.tools.upscalers, self.settings.tile, self.settings.overlap
        result = upscalers.upscale_to(image, width, height, p.upscaler_1, tile, overlap)
        if p.second_upscaler:
            second = upscalers.upscale_to(image, width, height, p.upscaler_2, tile, overlap)
            result = Image.blend(result, second, p.extras_upscaler_2_visibility)
        if p.resize_mode == SCALE_TO and p.upscaling_crop:
            left, top = (width - p.upscaling_resize_w) // 2, (height - p.upscaling_resize_h) // 2
            result = result.crop((left, top, left + p.upscaling_resize_w, top + p.upscaling_resize_h))
        return result

    def save(
        self, image: Image.Image, parameters: str | None, text: str, name: str, output_dir: Path | None
    ) -> Path | None:
        """`<counter>[-<name>].<ext>` with the source's `parameters` kept (a PNG also gets the `extras` chunk)."""
        if output_dir is not None:
            folder = output_dir
        elif self.settings.save_dir is not None:
            folder = images.dated_folder(self.settings.save_dir)
        else:
            return None
        return images.save_unique(
            image,
            folder,
            images.prompt_words(name, 32),
            parameters,
            chunks={"extras": text},
            fmt=self.settings.save_format,
        )
