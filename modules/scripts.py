"""A1111's `modules.scripts`: the Script base class, loading script files, and the runner that
shows their controls on a tab and calls their hooks during a job.

A script file may expose several Script subclasses, defined in it or imported into it. While it loads,
its extension's folder is first on sys.path (so it can import the extension's own package), as in A1111.
A file that fails to import, and a script whose show(), ui(), before_component or after_component
raises, is logged with its extension's name and named in the page's notices; the rest of the page loads."""

from __future__ import annotations

import importlib.util
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules import script_callbacks
from modules.core.engine import is_out_of_memory
from modules.errors import UserError
from modules.paths import REPO_ROOT
from modules.processing import PostprocessBatchListArgs, PostprocessImageArgs  # noqa: F401 - A1111 names

if TYPE_CHECKING:  # Gradio is imported where scripts are loaded or shown, not by the Ray replicas' jobs
    import gradio as gr

log = logging.getLogger(__name__)

AlwaysVisible = object()
"""Returned by show(): the script's controls are always on the tab (in a plain group; a script that wants an
accordion makes one in ui(), as in A1111)."""

_loading_dir: str | None = None


@dataclass
class OnComponent:
    """What a callback registered with Script.on_before_component / on_after_component receives."""

    component: gr.blocks.Block


def basedir() -> str:
    """The folder of the script file being loaded (its extension's folder for extension scripts)."""
    return _loading_dir or str(REPO_ROOT)


def script_origin(filename: str | None) -> str:
    """Who a script file belongs to, for messages: "extension <folder>" or "the built-in scripts"."""
    path = Path(filename or "?")
    if path.parent.name == "scripts" and path.parent.parent != REPO_ROOT:
        return f"extension {path.parent.parent.name}"
    return "the built-in scripts"


class Script:
    """Subclass this in a file under scripts/ or extensions/<name>/scripts/."""

    filename: str | None = None
    args_from = 0
    args_to = 0
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname: str | None = None
    group = None
    controls: list | None = None
    infotext_fields: list | None = None
    paste_field_names: list | None = None
    on_before_component_elem_id: list[tuple[str, Callable]] | None = None
    on_after_component_elem_id: list[tuple[str, Callable]] | None = None

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

    def before_component(self, component, **kwargs) -> None:
        """Before each Gradio component of the tab is made; kwargs["elem_id"] (A1111's ids) says which."""

    def after_component(self, component, **kwargs) -> None:
        """After each Gradio component of the tab is made, as before_component."""

    def on_before_component(self, callback: Callable, *, elem_id: str) -> None:
        """callback(OnComponent) before the component with this elem_id is made (register in show() or earlier)."""
        self.on_before_component_elem_id = [*(self.on_before_component_elem_id or []), (elem_id, callback)]

    def on_after_component(self, callback: Callable, *, elem_id: str) -> None:
        """callback(OnComponent) after the component with this elem_id is made."""
        self.on_after_component_elem_id = [*(self.on_after_component_elem_id or []), (elem_id, callback)]

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
    """Import every script file and collect the Script subclasses it exposes (each class once). Gradio 3
    keywords and the component hooks are set up first (modules.extensions.gradio_compat)."""
    from modules.extensions import gradio_compat

    gradio_compat.install()
    gradio_compat.observe_components(_before_component, _after_component)
    loaded = LoadedScripts()
    for number, (path, base) in enumerate(script_files(folders)):
        try:
            module = _import_script(f"webui_script_{number}_{path.stem}", path, base)
        except (Exception, SystemExit):
            log.error(
                "Script %s of %s failed to load:\n%s", path.name, script_origin(str(path)), traceback.format_exc()
            )
            loaded.errors.append(
                f"Script {path.name} of {script_origin(str(path))} failed to load; see the log for its traceback."
            )
            continue
        known = {cls for cls, _ in loaded.classes}
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Script) and value is not Script and value not in known:
                loaded.classes.append((value, str(path)))
                known.add(value)
    return loaded


def _import_script(name: str, path: Path, base: Path) -> Any:
    """Run one script file as module `name`, with basedir() answering `base` and `base` first on
    sys.path (A1111 puts an extension's folder there while its scripts load, then restores sys.path)."""
    global _loading_dir
    saved_path = sys.path
    _loading_dir = str(base)
    if base != REPO_ROOT:
        sys.path = [str(base), *sys.path]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        sys.path = saved_path
        _loading_dir = None


scripts_current: ScriptRunner | None = None
"""A1111's name: the runner of the tab being built, whose scripts see its components being made."""


@contextmanager
def building_tab(runner: ScriptRunner | None) -> Iterator[None]:
    """While a tab is built: its runner's scripts get before_component/after_component for its components."""
    global scripts_current
    previous, scripts_current = scripts_current, runner
    try:
        yield
    finally:
        scripts_current = previous


def _before_component(component: Any, kwargs: dict[str, Any]) -> None:
    if scripts_current is not None:
        scripts_current.before_component(component, **kwargs)
    script_callbacks.before_component_callback(component, **kwargs)


def _after_component(component: Any, kwargs: dict[str, Any]) -> None:
    script_callbacks.after_component_callback(component, **kwargs)
    if scripts_current is not None:
        scripts_current.after_component(component, **kwargs)


class ScriptRunner:
    """The scripts of one tab (selectable and AlwaysVisible) and the calls into them while the page is built and
    while a job runs; modules.ui.script_controls builds their controls. A script whose show() or ui() raises is
    left out of the tab; `notices` says so for the page."""

    def __init__(self, loaded: LoadedScripts, is_img2img: bool) -> None:
        self.is_img2img = is_img2img
        self.scripts: list[Script] = []  # every shown script, in load order
        self.selectable: list[Script] = []
        self.alwayson: list[Script] = []
        self.notices: list[str] = []
        self._failed_hooks: set[tuple[int, str]] = set()
        for cls, filename in loaded.classes:
            try:
                script = cls()
                script.filename, script.is_img2img, script.is_txt2img = filename, is_img2img, not is_img2img
                script.tabname = self.tab
                script.title()
                visibility = script.show(is_img2img)
            except Exception:
                self._report(f"Script {cls.__name__} (its title() or show())", filename)
                continue
            if visibility is AlwaysVisible:
                script.alwayson = True
                self.alwayson.append(script)
            elif visibility:
                self.selectable.append(script)
            else:
                continue
            self.scripts.append(script)

    @property
    def tab(self) -> str:
        return "img2img" if self.is_img2img else "txt2img"

    def _report(self, what: str, filename: str | None) -> None:
        """Log the exception being handled and add a notice naming the script's extension."""
        log.exception("%s of %s (%s) failed on the %s tab", what, script_origin(filename), filename, self.tab)
        notice = f"{what} of {script_origin(filename)} failed on the {self.tab} tab; see the log for its traceback."
        if notice not in self.notices:
            self.notices.append(notice)

    @property
    def titles(self) -> list[str]:
        return [script.title() for script in self.selectable]

    def setup_ui(self) -> list[gr.components.Component]:
        """A1111's name: create the tab's script controls (inside its layout), as modules.ui.script_controls
        builds them; returns the job's extra inputs."""
        from modules.ui.script_controls import build_controls  # the page's module; it imports this one

        return build_controls(self)

    def leave_out(self, script: Script, what: str) -> None:
        """Take `script` off the tab because its `what` raised (the exception being handled), with a notice."""
        self._report(what, script.filename)
        for kept in (self.scripts, self.alwayson, self.selectable):
            if script in kept:
                kept.remove(script)

    def before_component(self, component: Any, **kwargs: Any) -> None:
        """A1111's hook: each script's on_before_component callbacks for this elem_id, then before_component."""
        self._component_hooks("before", component, kwargs)

    def after_component(self, component: Any, **kwargs: Any) -> None:
        """As before_component, after the component is made."""
        self._component_hooks("after", component, kwargs)

    def _component_hooks(self, when: str, component: Any, kwargs: dict[str, Any]) -> None:
        for script in list(self.scripts):
            callbacks = [
                callback
                for elem_id, callback in getattr(script, f"on_{when}_component_elem_id") or []
                if elem_id == kwargs.get("elem_id")
            ]
            try:
                for callback in callbacks:
                    callback(OnComponent(component=component))
                getattr(script, f"{when}_component")(component, **kwargs)
            except Exception:
                key = (id(script), when)
                if key not in self._failed_hooks:  # a hook runs for every component: report it once
                    self._failed_hooks.add(key)
                    self._report(f"{when}_component of script {type(script).__name__}", script.filename)

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
        return script.run(p, *args[script.args_from : script.args_to])

    def check_plan(self, p) -> None:
        """Before queueing: the picked script's and the AlwaysVisible scripts' check_plan with their arguments
        in `p.script_args`; a UserError refuses the job, any other error is the script's bug and is logged."""
        args = p.script_args
        index = int(args[0] or 0) if args else 0
        picked = [self.selectable[index - 1]] if 0 < index <= len(self.selectable) else []
        for script in [*picked, *self.alwayson]:
            try:
                script.check_plan(p, *args[script.args_from : script.args_to])
            except UserError:
                raise
            except Exception:
                log.exception("Script %s failed in check_plan", script.title())

    def _each_alwayson(self, hook: str, p, *extra: Any, **kwargs: Any) -> None:
        for script in self.alwayson:
            try:
                getattr(script, hook)(p, *extra, *p.script_args[script.args_from : script.args_to], **kwargs)
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
