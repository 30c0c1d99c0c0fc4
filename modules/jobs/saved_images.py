"""The Save and Zip buttons under a gallery, as A1111 has them: the selected image (or all) is written again into
the outdir_save folder (`log/images`), a row is added to its `log.csv`, and Zip packs the saved files."""

from __future__ import annotations

import csv
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from modules import images
from modules.jobs.generation import GenerationResult
from modules.jobs.infotext import parse_infotext

LOG_COLUMNS = ("prompt", "seed", "width", "height", "sampler", "cfgs", "steps", "filename", "negative_prompt")


def chosen(result: GenerationResult, index: int, selected_only: bool) -> list[int]:
    """The images Save writes: the selected one when save_selected_only is on and it is not a grid, else all (also
    when none is selected: -1)."""
    if selected_only and result.index_of_first_image <= index < len(result.images):
        return [index]
    return list(range(len(result.images)))


def log_row(result: GenerationResult, filename: str) -> list[Any]:
    """log.csv's row for one Save: the job's first prompt, seed and settings, and the first file's name."""
    p = result.params
    return [
        p.prompt,
        result.seeds[result.index_of_first_image] if result.seeds else p.seed,
        p.width,
        p.height,
        p.sampler_name,
        p.cfg_scale,
        p.steps,
        filename,
        p.negative_prompt,
    ]


def save(result: GenerationResult, index: int, opts: Any, folder: Path, make_zip: bool = False) -> list[Path]:
    """Write the chosen images of `result` (`index`: the gallery's selection) into `folder` with their infotexts;
    returns their paths, with the zip of them first when `make_zip`."""
    folder.mkdir(parents=True, exist_ok=True)
    numbers = chosen(result, index, opts.save_selected_only)
    saved: list[Path] = []
    for number in numbers:
        text = result.infotexts[number] if number < len(result.infotexts) else ""
        seed = result.seeds[number] if number < len(result.seeds) else result.params.seed
        prompt = parse_infotext(text).get("Prompt", result.params.prompt) if text else result.params.prompt
        name, _ = images.save_image(
            result.images[number],
            folder,
            "",
            seed,
            prompt,
            opts.samples_format,
            info=text,
            grid=number < result.index_of_first_image,
            save_to_dirs=opts.use_save_to_dirs_for_ui,
        )
        saved.append(Path(name))
    if opts.save_write_log_csv and saved:
        log_file = folder / "log.csv"
        with open(log_file, "a", encoding="utf8", newline="") as handle:
            writer = csv.writer(handle)
            if handle.tell() == 0:
                writer.writerow(LOG_COLUMNS)
            writer.writerow(log_row(result, saved[0].relative_to(folder).as_posix()))
    if make_zip and saved:
        seeds = [result.seeds[i] for i in numbers if i < len(result.seeds)]
        archive = folder / f"{datetime.now():%Y%m%d%H%M%S}_{seeds[0]}-{seeds[-1]}.zip"
        with zipfile.ZipFile(archive, "w") as packed:
            for path in saved:
                packed.write(path, path.relative_to(folder).as_posix())
        saved.insert(0, archive)
    return saved
