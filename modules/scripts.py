"""A1111's `modules.scripts`: the Script base class, loading script files, and the runner that
shows their controls on a tab and calls their hooks during a job.

A script file may define several Script subclasses. One that fails to import is logged with its
traceback and named in the page's notices; the others load."""
from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from modules.engine import is_out_of_memory
from modules.errors import UserError
from modules.processing import PostprocessBatchListArgs, PostprocessImageArgs  # noqa: F401 - A1111 names

log = logging.getLogger(__name__)

AlwaysVisible = object()
"""Returned by show(): the script's controls are always on the tab, in their own accordion."""

_loading_dir: str | None = None


def basedir() -> str:
    """The folder of the script file being loaded (its extension's folder for extension scripts)."""
    return _loading_dir or str(Path(__file__).resolve().parent.parent)


class Script:
    """Subclass this in a file under scripts/ or extensions/<name>/scripts/."""

    filename: str | None = None
    args_from = 0
    args_to = 0
    alwayson = False
    is_txt2img = False
    is_img2img = False
    group = None
    infotext_fields: list | None = None
    paste_field_names: list | None = None

    def title(self) -> str:
        """The name in the Script dropdown."""
        raise NotImplementedError

    def show(self, is_img2img: bool) -> Any:
        """True, False, or AlwaysVisible."""
        return True

    def ui(self, is_img2img: bool) -> list:
        """Create the script's Gradio controls and return them; their values become run()'s args."""
        return []

    def run(self, p, *args):
        """For a script picked in the dropdown: do the job, usually through process_images(p)."""

    def check_plan(self, p, *args) -> None:
        """Not in A1111; optional. Before the job is queued, raise a UserError when the work these arguments
        plan for `p` (images, grid size) is over the server's limits, so the request is refused at once.
        Change nothing here: the job has not started."""

    def setup(self, p, *args) -> None:
        """When the processing object is made, before anything else."""

    def before_process(self, p, *args) -> None:
        """Before the prompts and seeds are worked out."""

    def process(self, p, *args) -> None:
        """After all_prompts/all_seeds are set, before sampling."""

    def before_process_batch(self, p, *args, **kwargs) -> None:
        """Before each batch; kwargs: batch_number, prompts, seeds, subseeds."""

    def process_batch(self, p, *args, **kwargs) -> None:
        """As before_process_batch, just before the batch is sampled."""

    def postprocess_batch(self, p, *args, **kwargs) -> None:
        """After a batch; kwargs: images, batch_number."""

    def postprocess_batch_list(self, p, pp, *args, **kwargs) -> None:
        """After a batch, with the images in `pp.images`."""

    def postprocess_image(self, p, pp, *args) -> None:
        """Each image before it is saved; replace `pp.image` to change it."""

    def postprocess(self, p, processed, *args) -> None:
        """After the whole job."""

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """An element id unique to this script and tab."""
        tab = "img2img" if self.is_img2img else "txt2img"
        name = "".join(c if c.isalnum() else "_" for c in self.title().lower())
        return f"script_{tab}_{name}_{item_id}"


@dataclass
class LoadedScripts:
    """Script classes found in the script folders, and the files that failed to load."""

    classes: list[tuple[type[Script], str]] = field(default_factory=list)  # (class, file)
    errors: list[str] = field(default_factory=list)


def script_files(folders: list[Path]) -> list[tuple[Path, Path]]:
    """(file, base folder) for every *.py directly in each folder, by name within a folder."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [(path, folder.parent) for path in sorted(folder.glob("*.py")) if path.is_file()]
    return found


def load_scripts(folders: list[Path]) -> LoadedScripts:
    """Import every script file and collect its Script subclasses."""
    global _loading_dir
    loaded = LoadedScripts()
    for number, (path, base) in enumerate(script_files(folders)):
        name = f"webui_script_{number}_{path.stem}"
        _loading_dir = str(base)
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception:
            sys.modules.pop(name, None)
            log.error("Script %s failed to load:\n%s", path, traceback.format_exc())
            loaded.errors.append(f"Script {path.name} failed to load; see the log for its traceback.")
            continue
        finally:
            _loading_dir = None
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Script) and value is not Script \
                    and value.__module__ == name:
                loaded.classes.append((value, str(path)))
    return loaded


class ScriptRunner:
    """The scripts of one tab: the Script dropdown with each script's controls, the AlwaysVisible
    accordions, and the calls into them while a job runs."""

    def __init__(self, loaded: LoadedScripts, is_img2img: bool) -> None:
        self.is_img2img = is_img2img
        self.selectable: list[Script] = []
        self.alwayson: list[Script] = []
        for cls, filename in loaded.classes:
            try:
                script = cls()
                script.filename, script.is_img2img, script.is_txt2img = filename, is_img2img, not is_img2img
                visibility = script.show(is_img2img)
            except Exception:
                log.exception("Script %s from %s failed to start", cls.__name__, filename)
                continue
            if visibility is AlwaysVisible:
                script.alwayson = True
                self.alwayson.append(script)
            elif visibility:
                self.selectable.append(script)

    @property
    def titles(self) -> list[str]:
        return [script.title() for script in self.selectable]

    def setup_ui(self) -> list[gr.components.Component]:
        """Create the controls (call inside the tab's layout); returns the job's extra inputs:
        the dropdown (an index, 0 = None) followed by every script's controls."""
        inputs: list[gr.components.Component] = []
        tab = "img2img" if self.is_img2img else "txt2img"
        dropdown = gr.Dropdown(label="Script", choices=["None", *self.titles], value="None", type="index",
                               elem_id=f"{tab}_script_dropdown")
        inputs.append(dropdown)
        for script in self.alwayson:
            with gr.Accordion(script.title(), open=False, elem_id=script.elem_id("accordion")):
                self._add_controls(script, inputs)
        groups = []
        for script in self.selectable:
            with gr.Group(visible=False) as group:
                self._add_controls(script, inputs)
            groups.append(group)

        def show_selected(index: int | None) -> list:
            return [gr.Group(visible=index == number + 1) for number in range(len(groups))]

        if groups:
            dropdown.change(show_selected, inputs=dropdown, outputs=groups, queue=False, api_visibility="private")
        return inputs

    def _add_controls(self, script: Script, inputs: list) -> None:
        controls = script.ui(self.is_img2img) or []
        script.args_from = len(inputs)
        inputs.extend(control for control in controls if control is not None)
        script.args_to = len(inputs)

    def script_by_title(self, title: str) -> int:
        """The dropdown index of a script (1-based; 0 is None); raises ValueError for an unknown title."""
        lowered = [t.lower() for t in self.titles]
        if title.lower() not in lowered:
            raise ValueError(f"There is no script named {title!r}; there are: {', '.join(self.titles) or 'none'}")
        return lowered.index(title.lower()) + 1

    def run(self, p, args: list) -> Any:
        """Run the script picked in args[0]; None when none is picked (plain generation)."""
        index = int(args[0] or 0) if args else 0
        if index == 0:
            return None
        script = self.selectable[index - 1]
        return script.run(p, *args[script.args_from:script.args_to])

    def check_plan(self, p) -> None:
        """Before queueing: the picked script's and the AlwaysVisible scripts' check_plan with their arguments
        in `p.script_args`; a UserError refuses the job, any other error is the script's bug and is logged."""
        args = p.script_args
        index = int(args[0] or 0) if args else 0
        picked = [self.selectable[index - 1]] if 0 < index <= len(self.selectable) else []
        for script in [*picked, *self.alwayson]:
            try:
                script.check_plan(p, *args[script.args_from:script.args_to])
            except UserError:
                raise
            except Exception:
                log.exception("Script %s failed in check_plan", script.title())

    def _each_alwayson(self, hook: str, p, *extra: Any, **kwargs: Any) -> None:
        for script in self.alwayson:
            try:
                getattr(script, hook)(p, *extra, *p.script_args[script.args_from:script.args_to], **kwargs)
            except Exception as exc:
                if is_out_of_memory(exc):
                    raise  # not the script's bug: the engine frees memory and tells the caller
                log.exception("Script %s failed in %s", script.title(), hook)

    def setup(self, p) -> None:
        self._each_alwayson("setup", p)

    def before_process(self, p) -> None:
        self._each_alwayson("before_process", p)

    def process(self, p) -> None:
        self._each_alwayson("process", p)

    def before_process_batch(self, p, **kwargs: Any) -> None:
        self._each_alwayson("before_process_batch", p, **kwargs)

    def process_batch(self, p, **kwargs: Any) -> None:
        self._each_alwayson("process_batch", p, **kwargs)

    def postprocess_batch(self, p, images: list, **kwargs: Any) -> None:
        self._each_alwayson("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp, **kwargs: Any) -> None:
        self._each_alwayson("postprocess_batch_list", p, pp, **kwargs)

    def postprocess_image(self, p, pp) -> None:
        self._each_alwayson("postprocess_image", p, pp)

    def postprocess(self, p, processed) -> None:
        self._each_alwayson("postprocess", p, processed)
