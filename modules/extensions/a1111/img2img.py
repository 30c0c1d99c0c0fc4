"""A1111's functions of `modules.img2img` (modules/img2img.py hands these names out; they live here because
they run through modules.processing, which imports that module)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modules import shared
from modules.errors import UserError
from modules.extensions.a1111.unsupported import unsupported
from modules.images import open_image
from modules.jobs.img2img_batch import IMAGE_SUFFIXES, mask_for

log = logging.getLogger(__name__)


def process_batch(
    p: Any,
    input_dir: str,
    output_dir: str,
    inpaint_mask_dir: str,
    args: list | None = None,
    to_scale: bool = False,
    scale_by: float = 1.0,
    use_png_info: bool = False,
    png_info_props: Any = None,
    png_info_dir: Any = None,
) -> Any:
    """Run the img2img processing `p` once for every image in `input_dir` (with the mask of the same name in
    `inpaint_mask_dir`, if any), saving into `output_dir` (else where img2img saves). `args` are the img2img
    tab's script arguments (the Script dropdown's index first): a picked script runs each image. Returns a
    Processed holding every image, or None when there was none. Unreadable files are skipped with a warning.
    A1111's scaling and PNG-info options are not honoured (`to_scale`, `use_png_info`)."""
    from modules.processing import process_images

    source = Path(input_dir)
    if not source.is_dir():
        raise UserError(f"The input folder {source} does not exist")
    masks = Path(inpaint_mask_dir) if inpaint_mask_dir else None
    runner = shared.services.scripts.runners.get("img2img")
    if output_dir:
        p.outpath_samples = output_dir
    p.do_not_save_grid = True  # as in A1111: one grid per image would be of no use
    results = None
    for path in sorted(f for f in source.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()):
        try:
            p.init_images, p.mask = [open_image(path)], mask_for(path, masks)
        except UserError as exc:
            log.warning("img2img batch: skipped %s: %s", path.name, exc)
            continue
        p.script_args = list(args or [])
        processed = (runner.run(p, p.script_args) if runner is not None and args else None) or process_images(p)
        if results is None:
            results = processed
        else:
            results.images.extend(processed.images)
            results.infotexts.extend(processed.infotexts)
    return results


def img2img(*args: Any, **kwargs: Any) -> Any:
    """A1111's img2img tab handler; its arguments are that page's controls, which this app's page differs
    from."""
    unsupported(
        "modules.img2img.img2img",
        "its arguments are A1111's page controls; build a "
        "StableDiffusionProcessingImg2Img and call modules.processing.process_images instead",
    )
