"""The script loader as A1111 extensions need it: the extension's folder on sys.path while its scripts load,
Script classes imported from the extension's own package, each class once, and scripts whose ui(), show()
or component hooks raise left out of the tab with a notice naming their extension."""

from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
import pytest

from modules import scripts

LIBRARY = """
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
"""


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
    assert loaded.errors == [
        "Script broken.py of extension needs-missing failed to load; see the log for its traceback."
    ]


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
    return scripts.ScriptRunner(
        scripts.LoadedScripts(
            classes=[
                (cls, f"/data/extensions/{extension.get(cls, 'broken-ext')}/scripts/{cls.__name__.lower()}.py")
                for cls in classes
            ]
        ),
        is_img2img=False,
    )


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
        "see the log for its traceback.",
    ]
    hidden = [
        block
        for block in page.blocks.values()
        if isinstance(block, gr.Group) and block.elem_id == "script_txt2img_broken_ui_group"
    ]
    assert len(hidden) == 1 and hidden[0].visible is False


class Watcher(scripts.Script):
    seen: list[tuple[str, str | None, str | None]]

    def __init__(self) -> None:
        self.seen = []

    def title(self):
        return "Watcher"

    def show(self, is_img2img):
        self.on_after_component(
            lambda found: self.seen.append(("callback", found.component.elem_id, None)), elem_id="txt2img_prompt"
        )
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
        ("before", "txt2img_prompt", "Prompt"),
        ("callback", "txt2img_prompt", None),
        ("after", "txt2img_prompt", "Prompt"),
        ("before", "txt2img_width", "Width"),
        ("after", "txt2img_width", "Width"),
        ("before", None, None),
        ("after", None, None),
    ]
    assert ("after", "txt2img_script_dropdown", "Script") in watcher.seen
    assert not {"outside", "after"} & {elem_id for _, elem_id, _ in watcher.seen}
    assert runner.notices == [
        "after_component of script BrokenHooks of extension broken-ext failed on the "
        "txt2img tab; see the log for its traceback."
    ]
    assert [s.title() for s in runner.alwayson] == ["Watcher", "Good"], "a failing hook leaves its script"


# An extension in the shape of sd-dynamic-prompts and sd-webui-ar: its Script class lives in its own package,
# its ui() uses Gradio 3 calls, and it watches the page's components for A1111's element ids.
PACKAGED_SCRIPT = """
import json
from pathlib import Path

import gradio as gr
from launch import args
from modules import script_callbacks, scripts
from modules.processing import process_images
from modules.ui_components import ToolButton

SEEN = {"before": [], "after": [], "data_dir": args.data_dir}


class SuffixButton(ToolButton):
    def __init__(self, suffix="", **kwargs):
        super().__init__(**kwargs)
        self.suffix = suffix


class Suffix(scripts.Script):
    def title(self):
        return "Packaged suffix"

    def ui(self, is_img2img):
        with gr.Box(), gr.Row(variant="compact").style(equal_height=True):
            text = gr.Textbox(label="Packaged suffix text", value="under the stars")
            button = SuffixButton(suffix="at dawn", value="🌅", elem_id=self.elem_id("dawn"))
            button.click(lambda: button.suffix, outputs=text, _js="() => { window.packagedClicked = true; }")
        return [text]

    def run(self, p, suffix):
        p.prompt = f"{p.prompt} {suffix}"
        return process_images(p)

    def before_component(self, component, **kwargs):
        SEEN["before"].append(kwargs.get("elem_id"))

    def after_component(self, component, **kwargs):
        SEEN["after"].append(kwargs.get("elem_id"))


def write_seen(demo, app):
    (Path(__file__).parent.parent / "seen.json").write_text(json.dumps(SEEN))


script_callbacks.on_app_started(write_seen)
"""

BROKEN_SCRIPT = """
import gradio as gr
from modules import scripts


class Broken(scripts.Script):
    def title(self):
        return "Broken extension"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        gr.Button("Half made")
        raise TypeError("Button.click() got an unexpected keyword argument, on purpose")

    def after_component(self, component, **kwargs):
        if kwargs.get("elem_id") == "txt2img_generate":
            raise RuntimeError("this hook is broken")
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, demo_checkpoint):
    import shutil

    from app_process import running_app

    data = tmp_path_factory.mktemp("loader-e2e")
    (data / "models" / "Stable-diffusion").mkdir(parents=True)
    shutil.copy(demo_checkpoint, data / "models" / "Stable-diffusion" / "demo.safetensors")
    packaged = data / "extensions" / "packaged-ext"
    write(packaged / "packaged_lib" / "__init__.py", "")
    write(packaged / "packaged_lib" / "suffix.py", PACKAGED_SCRIPT)
    write(packaged / "scripts" / "packaged.py", "from packaged_lib.suffix import Suffix  # noqa: F401\n")
    write(data / "extensions" / "broken-ext" / "scripts" / "broken.py", BROKEN_SCRIPT)
    with running_app(data) as url:
        yield url, data


def served_config(url: str) -> dict:
    import requests

    return requests.get(url + "config", timeout=10).json()


def test_a_broken_extension_is_noticed_and_the_page_loads(app):
    url, data = app
    config = served_config(url)
    notices = next(c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "notices")
    for tab in ("txt2img", "img2img"):
        assert f"The controls (ui()) of script Broken of extension broken-ext failed on the {tab} tab" in notices, (
            notices
        )
    assert "after_component of script Broken of extension broken-ext failed on the txt2img tab" in notices
    log = (data / "server.log").read_text()
    assert "on purpose" in log and "extension broken-ext" in log
    labels = {c["props"].get("label") for c in config["components"]}
    assert {"Prompt", "Packaged suffix text"} <= labels


def test_the_other_extensions_script_works_with_its_gradio3_controls(app):
    from app_process import endpoint_args
    from gradio_client import Client

    url, _ = app
    config = served_config(url)
    button = next(c for c in config["components"] if c["props"].get("elem_id") == "script_txt2img_packaged_suffix_dawn")
    assert button["type"] == "button" and button["props"]["value"] == "🌅"
    assert "() => { window.packagedClicked = true; }" in {d.get("js") for d in config["dependencies"]}
    client = Client(url, verbose=False)
    args = endpoint_args(
        client,
        "/txt2img",
        {"Prompt": "a lighthouse", "Sampling steps": 2, "Width": 64, "Height": 64, "Script": "Packaged suffix"},
    )
    _, info = client.predict(*args, api_name="/txt2img")
    assert "a lighthouse under the stars" in info


def test_component_hooks_receive_a1111_element_ids(app):
    import json

    _, data = app
    seen = json.loads((data / "extensions" / "packaged-ext" / "seen.json").read_text())
    expected = {
        f"{tab}_{name}"
        for tab in ("txt2img", "img2img")
        for name in ("prompt", "width", "height", "steps", "cfg_scale", "seed", "generate", "gallery")
    }
    expected |= {"img2img_image", "img2img_sketch", "img2maskimg", "inpaint_sketch", "img_inpaint_base"}
    assert expected <= set(seen["after"]), sorted(expected - set(seen["after"]))
    assert expected <= set(seen["before"]), sorted(expected - set(seen["before"]))
    assert "setting_sd_model_checkpoint" not in seen["after"], "only the tab being built reaches its scripts"


def test_launch_args_are_the_apps_flags(app):
    import json

    _, data = app
    assert json.loads((data / "extensions" / "packaged-ext" / "seen.json").read_text())["data_dir"] == str(data)
