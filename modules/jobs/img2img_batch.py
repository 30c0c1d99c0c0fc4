"""img2img over a folder: each image (with its mask of the same name, if any) into an output folder, under a
name no other file has."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from PIL import Image

from modules.core.atomic_files import write_new
from modules.core.engine import JobContext
from modules.errors import UserError
from modules.images import encode_png, open_image
from modules.imaging.image_tools import ImageTools
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import GenerationResult, RunSettings
from modules.jobs.generation_params import GenerationParams
from modules.prompting.networks import Networks
from modules.sd_models import StableDiffusionModel

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def _folder(value: str, what: str, must_exist: bool = True) -> Path:
    if not value or not value.strip():
        raise UserError(f"Batch needs an {what}")
    folder = Path(value.strip()).expanduser()
    if must_exist and not folder.is_dir():
        raise UserError(f"The {what} {folder} does not exist")
    return folder


def run_batch(
    model: StableDiffusionModel,
    params: GenerationParams,
    ctx: JobContext,
    settings: RunSettings,
    networks: Networks | None,
    input_dir: str,
    output_dir: str,
    mask_dir: str = "",
    tools: ImageTools | None = None,
    refiner: StableDiffusionModel | None = None,
    describe: Callable[[Image.Image], str] | None = None,
    validated: bool = False,
) -> GenerationResult:
    """Process every image in `input_dir` (with `refiner`, the model of the params' Refiner checkpoint);
    a file that can't be read is skipped with a warning. With `describe` (Interrogate CLIP), each image's prompt
    is the prompt, ", " and what `describe` says of the image (A1111's "Append interrogated prompt"). `validated`:
    `params` passed validate when the batch was submitted, so only an image's prompt made longer is checked again."""
    source = _folder(input_dir, "input folder")
    target = _folder(output_dir, "output folder", must_exist=False)
    masks = _folder(mask_dir, "mask folder") if mask_dir and mask_dir.strip() else None
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    result = GenerationResult(params=params)
    if not files:
        result.warnings.append(f"No images in {source}")
    for path in files:
        if ctx.interrupted:
            break
        try:
            inputs = Img2ImgInputs([open_image(path)], mask_for(path, masks))
        except UserError as exc:
            message = f"Skipped {path.name}: {exc}"
            log.warning(message)
            result.warnings.append(message)
            continue
        job_params = (
            replace(params, prompt=appended_prompt(params.prompt, describe(inputs.images[0]))) if describe else params
        )
        job = Img2Img(model, job_params, ctx, replace(settings, save_dir=None), networks, tools, inputs=inputs)
        job.refiner_model = refiner
        job.validated = validated and job_params is params
        done = job.run()
        result.warnings.extend(w for w in done.warnings if w not in result.warnings)
        for image, infotext, seed in zip(done.images, done.infotexts, done.seeds):
            data = encode_png(image, infotext)
            saved = write_new(target, _free_names(path.stem), lambda handle, data=data: handle.write(data))
            result.paths.append(saved)
            result.images.append(image)
            result.infotexts.append(infotext)
            result.seeds.append(seed)
        result.params, result.model = done.params, done.model
    result.interrupted = ctx.interrupted
    return result


def appended_prompt(prompt: str, interrogated: str) -> str:
    """The prompt with the interrogated text after it, joined by ", " (just the text for an empty prompt)."""
    return f"{prompt}, {interrogated}" if prompt else interrogated


def _free_names(stem: str) -> Iterator[str]:
    """`<stem>.png`, then `<stem>-1.png`, `<stem>-2.png`…: write_new takes the first that is free, so no
    output ever replaces a file, an input in the same folder included."""
    yield f"{stem}.png"
    for number in range(1, 10_000):
        yield f"{stem}-{number}.png"


def mask_for(path: Path, masks: Path | None):
    """The image in the mask folder with the same name (any image extension), opened."""
    if masks is None:
        return None
    for candidate in sorted(masks.glob(f"{path.stem}.*")):
        if candidate.suffix.lower() in IMAGE_SUFFIXES:
            return open_image(candidate)
    return None
