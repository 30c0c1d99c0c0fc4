"""The script loader as A1111 extensions need it: the extension's folder on sys.path while its scripts load,
Script classes imported from the extension's own package, each class once, and scripts whose ui(), show()
or component hooks raise left out of the tab with a notice naming their extension."""
from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
import pytest

from modules import scripts

LIBRARY = '''
import sys

import gradio as gr
from modules import scripts

PATH_WHILE_LOADING = list(sys.path)


class Imported(scripts.Script):
    def title(self):
        return "Imported {tag}"

    def ui(self, is_img2img):
        return [gr.Textbox(label="Imported suffix")]

    def later(self):
        from {package} import lazy  # a submodule first imported at run time, as Dynamic Prompts does
        return lazy.VALUE
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def package_extension(tmp_path, request):
    """extensions/<name>/ with a package of its own whose Script class two script files import."""
    package = f"loader_pkg_{request.node.name[-40:].replace('[', '_').replace(']', '_')}"
    ext = tmp_path / "extensions" / "package-ext"
    write(ext / package / "__init__.py", "")
    write(ext / package / "impl.py", LIBRARY.format(tag="script", package=package))
    write(ext / package / "lazy.py", "VALUE = 'lazy import works'\n")
    write(ext / "scripts" / "entry.py", f"from {package}.impl import Imported\n\n__all__ = ['Imported']\n")
    write(ext / "scripts" / "second.py", f"from modules.scripts import Script\nfrom {package}.impl import Imported\n")
    yield ext, package
    for name in [name for name in sys.modules if name.split(".")[0] == package]:
        del sys.modules[name]


def test_a_script_class_imported_from_the_extensions_package_counts_once(package_extension):
    ext, package = package_extension
    before = list(sys.path)
    loaded = scripts.load_scripts([ext / "scripts"])
    assert loaded.errors == []
    assert [(cls.__name__, Path(file).name) for cls, file in loaded.classes] == [("Imported", "entry.py")]
    assert sys.path == before, "the extension's folder is taken off sys.path once its scripts are loaded"
    library = sys.modules[f"{package}.impl"]
    assert library.PATH_WHILE_LOADING[0] == str(ext)
    assert loaded.classes[0][0]().later() == "lazy import works"


def test_a_script_that_fails_to_import_names_its_extension(tmp_path):
    ext = tmp_path / "extensions" / "needs-missing"
    write(ext / "scripts" / "broken.py", "import module_that_is_not_there\n")
    loaded = scripts.load_scripts([ext / "scripts"])
    assert loaded.classes == []
    assert loaded.errors == ["Script broken.py of extension needs-missing failed to load; "
                             "see the log for its traceback."]


class Good(scripts.Script):
    def title(self):
        return "Good"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(label="Good checkbox")]


class BrokenUi(scripts.Script):
    def title(self):
        return "Broken UI"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        gr.Checkbox(label="Made before the error")
        raise TypeError("unexpected keyword argument 'tool'")


class BrokenSelectable(BrokenUi):
    def title(self):
        return "Broken selectable"

    def show(self, is_img2img):
        return True


class BrokenShow(Good):
    def show(self, is_img2img):
        raise RuntimeError("no show")


class Selectable(scripts.Script):
    def title(self):
        return "Selectable"

    def ui(self, is_img2img):
        return [gr.Textbox(label="Selectable text")]


def runner_of(*classes: type) -> scripts.ScriptRunner:
    extension = {Good: "good-ext", Selectable: "good-ext"}
    return scripts.ScriptRunner(scripts.LoadedScripts(classes=[
        (cls, f"/data/extensions/{extension.get(cls, 'broken-ext')}/scripts/{cls.__name__.lower()}.py")
        for cls in classes]), is_img2img=False)


def test_a_broken_ui_or_show_leaves_the_other_scripts_and_is_noticed():
    runner = runner_of(BrokenShow, BrokenUi, Good, BrokenSelectable, Selectable)
    with gr.Blocks() as page:
        inputs = runner.setup_ui()
    assert [s.title() for s in runner.alwayson] == ["Good"]
    assert runner.titles == ["Selectable"]
    assert inputs[0].choices == [("None", "None"), ("Selectable", "Selectable")]
    assert [control.label for control in inputs[1:]] == ["Good checkbox", "Selectable text"]
    assert runner.notices == [
        "Script BrokenShow (its title() or show()) of extension broken-ext failed on the txt2img tab; "
        "see the log for its traceback.",
        "The controls (ui()) of script BrokenUi of extension broken-ext failed on the txt2img tab; "
        "see the log for its traceback.",
        "The controls (ui()) of script BrokenSelectable of extension broken-ext failed on the txt2img tab; "
        "see the log for its traceback."]
    hidden = [block for block in page.blocks.values() if isinstance(block, gr.Accordion)
              and block.label == "Broken UI"]
    assert len(hidden) == 1 and hidden[0].visible is False


class Watcher(scripts.Script):
    seen: list[tuple[str, str | None, str | None]]

    def __init__(self) -> None:
        self.seen = []

    def title(self):
        return "Watcher"

    def show(self, is_img2img):
        self.on_after_component(lambda found: self.seen.append(("callback", found.component.elem_id, None)),
                                elem_id="txt2img_prompt")
        return scripts.AlwaysVisible

    def before_component(self, component, **kwargs):
        self.seen.append(("before", kwargs.get("elem_id"), kwargs.get("label")))

    def after_component(self, component, **kwargs):
        self.seen.append(("after", kwargs.get("elem_id"), component.label))


class BrokenHooks(Good):
    def after_component(self, component, **kwargs):
        raise KeyError(kwargs.get("elem_id"))


def test_component_hooks_see_each_component_of_the_tab_being_built():
    scripts.load_scripts([])  # sets the hooks up, as at start
    runner = runner_of(Watcher, BrokenHooks)
    with gr.Blocks():
        gr.Textbox(label="Before the tab", elem_id="outside")
        with scripts.building_tab(runner):
            gr.Textbox(label="Prompt", elem_id="txt2img_prompt")
            gr.Slider(label="Width", elem_id="txt2img_width")
            gr.Button("Generate")
            runner.setup_ui()
        gr.Textbox(label="After the tab", elem_id="after")
    watcher = runner.alwayson[0]
    assert watcher.seen[:7] == [
        ("before", "txt2img_prompt", "Prompt"), ("callback", "txt2img_prompt", None),
        ("after", "txt2img_prompt", "Prompt"),
        ("before", "txt2img_width", "Width"), ("after", "txt2img_width", "Width"),
        ("before", None, None), ("after", None, None)]
    assert ("after", "txt2img_script_dropdown", "Script") in watcher.seen
    assert not {"outside", "after"} & {elem_id for _, elem_id, _ in watcher.seen}
    assert runner.notices == ["after_component of script BrokenHooks of extension broken-ext failed on the "
                              "txt2img tab; see the log for its traceback."]
    assert [s.title() for s in runner.alwayson] == ["Watcher", "Good"], "a failing hook leaves its script"
