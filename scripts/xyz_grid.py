"""X/Y/Z plot: one image per combination of up to three axes' values, in labelled grids (one per Z
value, side by side in a summary). Values use A1111's range syntax: `1-5`, `1-10 (+2)`, `1-10 [5]`,
or a comma-separated list."""

import copy
import csv
import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

import modules.scripts as scripts
from modules import images, shared
from modules.core.limits import Limits, output_size
from modules.errors import UserError
from modules.jobs.generation import validate
from modules.jobs.generation_params import NO_REFINER
from modules.processing import Processed, fix_seed, process_images_each
from modules.sampling import registry
from modules.shared import opts, state

_INT_RANGE = re.compile(r"^\s*([+-]?\d+)\s*-\s*([+-]?\d+)\s*(?:\(\s*([+-]\d+)\s*\)|\[\s*(\d+)\s*\])?\s*$")
_FLOAT_RANGE = re.compile(
    r"^\s*([+-]?\d*\.?\d+)\s*-\s*([+-]?\d*\.?\d+)\s*"
    r"(?:\(\s*([+-]\d*\.?\d+)\s*\)|\[\s*(\d+)\s*\])?\s*$"
)


@dataclass(frozen=True)
class Axis:
    """One kind of axis: how its values are read, applied to a job (given the value and the axis's
    first value), and labelled."""

    label: str
    kind: type
    apply: Callable[[Any, Any, Any], None]
    show_label: bool = True  # "Steps: 20" rather than "20"
    choices: Callable[[], list[str]] | None = None  # every value it can take, for 📒


def _field(name: str) -> Callable[[Any, Any, Any], None]:
    return lambda p, value, _first: setattr(p, name, value)


def _size(p, value: str, _first: str) -> None:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not match:
        raise UserError(f"A Size value must look like 512x768, got {value!r}")
    p.width, p.height = int(match[1]), int(match[2])


def _prompt_sr(p, value: str, search: str) -> None:
    """Replace the axis's first value, wherever it is in the prompts, with `value`."""
    if search not in p.prompt and search not in p.negative_prompt:
        raise UserError(f"Prompt S/R: {search!r} is not in the prompt or the negative prompt")
    p.prompt, p.negative_prompt = p.prompt.replace(search, value), p.negative_prompt.replace(search, value)


def _checkpoint(p, value: str, _first: str) -> None:
    models = shared.services.models
    if models.current_title is None or value not in (models.current_title, models.current.checkpoint.name):
        models.load(value)


def _vae(p, value: str, _first: str) -> None:
    """A VAE for this cell only: process_images swaps it in (and the grid puts the setting's back)."""
    p.override_settings = {**p.override_settings, "sd_vae": value}  # a copy: the cells share the first dict


def _checkpoint_titles() -> list[str]:
    return shared.services.models.titles()


def _vae_names() -> list[str]:
    return shared.services.vaes.choices()


AXES = (
    Axis("Nothing", str, lambda p, value, first: None),
    Axis("Seed", int, _field("seed")),
    Axis("Steps", int, _field("steps")),
    Axis("CFG Scale", float, _field("cfg_scale")),
    Axis("Sampler", str, _field("sampler_name"), show_label=False, choices=lambda: registry.SAMPLER_NAMES),
    Axis("Schedule type", str, _field("scheduler"), choices=lambda: registry.SCHEDULE_LABELS),
    Axis("Prompt S/R", str, _prompt_sr, show_label=False),
    Axis("Checkpoint name", str, _checkpoint, show_label=False, choices=_checkpoint_titles),
    Axis("Clip skip", int, _field("clip_skip")),
    Axis("Denoising", float, _field("denoising_strength")),
    Axis("Hires steps", int, _field("hr_second_pass_steps")),
    Axis("Size", str, _size, show_label=False),
    Axis("VAE", str, _vae, choices=_vae_names),
    Axis("Var. seed", int, _field("subseed")),
    Axis("Var. strength", float, _field("subseed_strength")),
    Axis("Refiner checkpoint", str, _field("refiner_checkpoint"), choices=_checkpoint_titles),
    Axis("Refiner switch at", float, _field("refiner_switch_at")),
)


def _range(match: re.Match, kind: type) -> tuple:
    """(start, end, step, count) of a range, counted without listing its values; step None: `[count]`."""
    start, end = kind(match[1]), kind(match[2])
    if match[4] is not None:
        return start, end, None, int(match[4])
    step = kind(match[3]) if match[3] is not None else (1 if end >= start else -1)
    if step == 0 or (end - start) * step < 0:
        raise UserError(f"The step {step} never gets from {start} to {end}")
    if kind is int:
        return start, end, step, (end - start) // step + 1
    steps = (end - start) / step
    if not math.isfinite(steps):
        raise ValueError("the range is too wide")
    return start, end, step, math.floor(steps + 1e-9) + 1


def _expand(match: re.Match, kind: type) -> list:
    start, end, step, count = _range(match, kind)
    if step is None:
        return [round(v) if kind is int else round(float(v), 6) for v in np.linspace(start, end, count)]
    return [start + i * step if kind is int else round(start + i * step, 6) for i in range(count)]


def parse_values(axis: Axis, text: str, limits: Limits | None = None) -> list:
    """An axis's values from its text box, ranges expanded and each value checked. With `limits`, an axis
    may have at most max_grid_cells values, and a range is counted (and refused) before it is expanded."""
    tokens = [token.strip() for row in csv.reader([text or ""], skipinitialspace=True) for token in row]
    tokens = [token for token in tokens if token]
    if limits is not None:
        limits.check_planned_images(len(tokens), f"{axis.label}: {len(tokens)} values")
    if axis.kind is str:
        return tokens
    values = []
    for token in tokens:
        match = (_INT_RANGE if axis.kind is int else _FLOAT_RANGE).match(token)
        try:
            if match and limits is not None:
                limits.check_planned_images(
                    len(values) + _range(match, axis.kind)[3], f"{axis.label} values up to the range {token!r}"
                )
            values += _expand(match, axis.kind) if match else [axis.kind(token)]
        except ValueError:
            raise UserError(f"{axis.label}: can't read {token!r} as a number or a range") from None
    return values


def check_values(axis: Axis, values: list) -> None:
    """Refuse values that would only fail once the grid is half done."""
    if axis.label == "Sampler":
        for value in values:
            try:
                registry.resolve(value, "Automatic")
            except ValueError as exc:
                raise UserError(str(exc)) from exc
    if axis.label in ("Checkpoint name", "Refiner checkpoint"):
        titles = shared.services.models.titles()
        off = {NO_REFINER} if axis.label == "Refiner checkpoint" else set()
        for value in values:
            if value not in off and not any(value == title or title.startswith(value) for title in titles):
                raise UserError(f"There is no checkpoint called {value!r}")
    if axis.label == "VAE":
        names = shared.services.vaes.choices()
        for value in values:
            if value not in names:
                raise UserError(f"There is no VAE called {value!r}; there are {', '.join(names)}")


def all_values(axis: Axis) -> str:
    """📒: every value an axis with choices can take, written as its values box reads them ("" for others)."""
    return "" if axis.choices is None else ", ".join(map(_csv_item, axis.choices()))


def _csv_item(value: str) -> str:
    """`value` as one item of a values box (quoted when it holds a comma or a quote)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow([value])
    return text.getvalue()


def swapped(a_type: int | None, a_values: str, b_type: int | None, b_values: str) -> tuple:
    """Two axes' types (indexes in, names out: the type dropdowns give indexes) and values, exchanged."""

    def name(index: int | None) -> str:
        return AXES[index or 0].label

    return name(b_type), b_values, name(a_type), a_values


def label(axis: Axis, value: Any) -> str:
    return f"{axis.label}: {value}" if axis.show_label else str(value)


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        names = [axis.label for axis in AXES]
        controls = []
        for letter, default in (("x", 1), ("y", 0), ("z", 0)):
            with gr.Row():
                kind = gr.Dropdown(
                    label=f"{letter.upper()} type",
                    choices=names,
                    value=names[default],
                    type="index",
                    elem_id=self.elem_id(f"{letter}_type"),
                )
                values = gr.Textbox(label=f"{letter.upper()} values", lines=1, elem_id=self.elem_id(f"{letter}_values"))
                fill = gr.Button(
                    "📒",
                    elem_id=f"xyz_grid_fill_{letter}_tool_button",
                    size="sm",
                    scale=0,
                    min_width=40,
                    elem_classes="tool",
                    visible=AXES[default].choices is not None,
                )  # A1111's id
            kind.change(
                lambda index: gr.Button(visible=AXES[index].choices is not None),
                inputs=kind,
                outputs=fill,
                queue=False,
                show_progress="hidden",
                api_visibility="private",
            )
            fill.click(
                lambda index: all_values(AXES[index]),
                inputs=kind,
                outputs=values,
                queue=False,
                show_progress="hidden",
                api_visibility="private",
            )
            controls += [kind, values]
        with gr.Row():
            for (first, second), text in (
                ((0, 1), "Swap X/Y axes"),
                ((1, 2), "Swap Y/Z axes"),
                ((0, 2), "Swap X/Z axes"),
            ):
                pair = [*controls[2 * first : 2 * first + 2], *controls[2 * second : 2 * second + 2]]
                letters = "xyz"[first] + "xyz"[second]
                gr.Button(text, elem_id=f"{letters}_grid_swap_axes_button", size="sm").click(  # A1111's ids
                    swapped, inputs=pair, outputs=pair, queue=False, show_progress="hidden", api_visibility="private"
                )
        with gr.Row():
            controls.append(gr.Checkbox(label="Draw legend", value=True, elem_id=self.elem_id("draw_legend")))
            controls.append(
                gr.Checkbox(label="Include Sub Images", value=False, elem_id=self.elem_id("include_lone_images"))
            )
            controls.append(
                gr.Checkbox(label="Include Sub Grids", value=False, elem_id=self.elem_id("include_sub_grids"))
            )
            controls.append(gr.Checkbox(label="Keep -1 for seeds", value=False, elem_id=self.elem_id("no_fixed_seeds")))
        controls.append(
            gr.Slider(
                label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2, elem_id=self.elem_id("margin_size")
            )
        )
        return controls

    def check_plan(self, p, x_type, x_values, y_type, y_values, z_type, z_values, *_options):
        self.plan(p, (x_type, y_type, z_type), (x_values, y_values, z_values))

    def plan(self, p, types: tuple, texts: tuple) -> tuple[list[Axis], list[list]]:
        """The axes and their values, checked before the first image: the cells (× the images each cell
        makes) within max_grid_cells, every axis value within the generation limits, and the grid (every
        cell the size of the first) within img_max_size_mp."""
        limits = Limits.from_options(opts)
        try:
            axes = [AXES[int(kind or 0)] for kind in types]
        except (IndexError, TypeError, ValueError):
            raise UserError(f"Axis types must be numbers from 0 to {len(AXES) - 1}, got {list(types)}") from None
        values = []
        for axis, text in zip(axes, texts):
            parsed = parse_values(axis, text, limits) if axis.label != "Nothing" else []
            check_values(axis, parsed)
            values.append(parsed or [None])
        cells, per_cell = math.prod(len(v) for v in values), p.batch_size * p.n_iter
        each = f" of {per_cell} images each" if per_cell > 1 else ""
        limits.check_planned_images(
            cells * per_cell, f"X/Y/Z plot: {' × '.join(str(len(v)) for v in values)} cells{each}"
        )
        first = copy.copy(p)
        for axis, axis_values in zip(axes, values):
            if axis.label in ("Nothing", "Checkpoint name") or axis_values == [None]:  # checkpoints: by name only
                continue
            for value in axis_values:
                job = copy.copy(p)
                axis.apply(job, value, axis_values[0])
                validate(job.params, limits)
            axis.apply(first, axis_values[0], axis_values[0])
        limits.check_grid(cells, *output_size(first.params), "X/Y/Z plot")
        return axes, values

    def run(
        self,
        p,
        x_type,
        x_values,
        y_type,
        y_values,
        z_type,
        z_values,
        draw_legend,
        include_images,
        include_grids,
        keep_random_seeds,
        margin,
    ):
        axes, values = self.plan(p, (x_type, y_type, z_type), (x_values, y_values, z_values))
        if not keep_random_seeds:
            fix_seed(p)
        xs, ys, zs = values
        state.job_count = len(xs) * len(ys) * len(zs)
        models = shared.services.models
        original_model = models.current_title
        cells, infotexts = {}, {}
        keys = [(ix, iy, iz) for iz in range(len(zs)) for iy in range(len(ys)) for ix in range(len(xs))]

        def cell_jobs() -> Iterator[Any]:
            """Each cell's job in grid order, its axes applied (a Checkpoint axis loads its model) as it is taken."""
            for ix, iy, iz in keys:
                if state.interrupted:  # before a Checkpoint axis loads a model for the next cell
                    return
                job = copy.copy(p)
                job.do_not_save_grid = True
                for axis, value, axis_values in zip(axes, (xs[ix], ys[iy], zs[iz]), values):
                    if value is not None:
                        axis.apply(job, value, axis_values[0])
                yield job

        try:
            for key, processed in zip(keys, process_images_each(cell_jobs())):
                if not processed.images or processed.interrupted:  # a cell cut short is left out
                    break
                cells[key] = processed.images[0]
                infotexts[key] = processed.infotexts[0]
        finally:
            if models.current_title != original_model and original_model is not None:
                models.load(original_model)
            shared.services.switching.sync_vae()  # the VAE the settings name, after a VAE axis
        if not cells:
            return Processed(p, [], p.seed, "")
        first = next(iter(cells.values()))
        blank = Image.new("RGB", first.size, "white")
        z_grids = []
        for iz in range(len(zs)):
            tiles = [
                cells.get((ix, iy, iz), blank).resize(first.size) for iy in range(len(ys)) for ix in range(len(xs))
            ]
            grid = images.image_grid(tiles, rows=len(ys))
            if draw_legend:
                hor = [[images.GridAnnotation(label(axes[0], x) if x is not None else "")] for x in xs]
                ver = [[images.GridAnnotation(label(axes[1], y) if y is not None else "")] for y in ys]
                grid = images.draw_grid_annotations(grid, first.width, first.height, hor, ver, int(margin))
            z_grids.append(grid)
        main = z_grids[0]
        if len(z_grids) > 1:
            size = z_grids[0].size
            main = images.image_grid([g.resize(size) for g in z_grids], rows=1)
            if draw_legend:
                main = images.draw_grid_annotations(
                    main,
                    size[0],
                    size[1],
                    [[images.GridAnnotation(label(axes[2], z))] for z in zs],
                    [[images.GridAnnotation("")]],
                )
        info = next(iter(infotexts.values()))
        if opts.grid_save:
            images.save_image(
                main, p.outpath_grids, "xyz_grid", p.seed, p.prompt, opts.grid_format, info=info, grid=True, p=p
            )
        results = [main] + (z_grids if include_grids and len(z_grids) > 1 else [])
        firsts = len(results)
        if include_images:
            results += list(cells.values())
        return Processed(
            p, results, p.seed, info, infotexts=[info] * firsts + list(infotexts.values()), index_of_first_image=firsts
        )
