"""The grid of a job's images, as A1111's process_images makes one: put first among the images (return_grid) and
saved to the grids folder (grid_save), both with the first image's infotext."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from modules import images
from modules.errors import DiskFull
from modules.jobs.generation import GenerationResult

log = logging.getLogger(__name__)


def wanted(opts: Any, count: int, do_not_save_grid: bool) -> bool:
    """Whether a job of `count` images gets a grid: shown or saved, not refused by the job, and (with
    grid_only_if_multiple) of two images or more."""
    if do_not_save_grid or count == 0 or not (opts.return_grid or opts.grid_save):
        return False
    return count > 1 or not opts.grid_only_if_multiple


def add_grid(p: Any, result: GenerationResult, services: Any) -> None:
    """Make the grid of `result.images` (the job of processing object `p`): saved into p.outpath_grids (or the
    tab's grids folder) when grid_save is on, inserted first (with the first image's infotext, seed and prompts,
    and its file) when return_grid is."""
    opts, samples = services.opts, list(result.images)
    if not wanted(opts, len(samples), p.do_not_save_grid):
        return
    grid = images.image_grid(samples, p.batch_size)
    text = result.infotexts[0] if result.infotexts else ""
    grid.info["parameters"] = text
    path = None
    if opts.grid_save:
        kind = "img2img" if p.is_img2img else "txt2img"
        folder = p.outpath_grids or services.jobs.output_dir(f"outdir_{kind}_grids")
        seeds, prompts = p.all_seeds or result.seeds, p.all_prompts or [p.prompt]
        try:
            path = Path(
                images.save_image(
                    grid,
                    folder,
                    "grid",
                    seeds[0],
                    prompts[0],
                    opts.grid_format,
                    info=text,
                    short_filename=not opts.grid_extended_filename,
                    p=p,
                    grid=True,
                )[0]
            )
        except DiskFull as exc:
            log.error("%s", exc)
            result.warnings.append(str(exc))
    if not opts.return_grid:
        return
    saved_all = len(result.paths) == len(samples)
    result.images.insert(0, grid)
    for values in (result.infotexts, result.seeds, result.prompts, result.negative_prompts):
        if values:  # the grid's are the first image's
            values.insert(0, values[0])
    result.index_of_first_image = 1
    if saved_all and path is not None:
        result.paths.insert(0, path)
