"""A1111's Python names for extensions (modules.devices, hashes, infotext_utils and its old name, sd_samplers,
sd_schedulers, safe, sd_hijack, img2img, processing.create_binary_mask, paths, shared.*): a fixture extension
(tests/a1111_names_extension.py) is loaded through the app's own loader and uses them; Tag Autocomplete's and
Dynamic Prompts' own files are checked against them when their sources are at hand."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from script_services import generate, services_with_scripts

from modules import images, script_callbacks
from modules.paths import REPO_ROOT
from modules.sampling.registry import SAMPLER_NAMES
from modules.sampling.schedules import SCHEDULES

FIXTURE = Path(__file__).with_name("a1111_names_extension.py")
EXTENSION = "compat-ext"
MIRRORS = Path("/work/.mirror")
TAGCOMPLETE = MIRRORS / "DominikDoom+a1111-sd-webui-tagcomplete" / "repo"
DYNAMIC_PROMPTS = MIRRORS / "adieyal+sd-dynamic-prompts" / "repo"


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("data")
    scripts_dir = data / "extensions" / EXTENSION / "scripts"
    scripts_dir.mkdir(parents=True)
    shutil.copy(FIXTURE, scripts_dir / "compat_names.py")
    made = services_with_scripts(data, demo_checkpoint, [scripts_dir])
    yield made
    made.engine.shutdown()


@pytest.fixture(scope="module")
def fixture_module(services):
    script = next(s for s in services.scripts.runners["txt2img"].alwayson if s.title() == "Compat names")
    return sys.modules[type(script).__module__]


def test_every_name_imports_in_an_extension_script(services, fixture_module):
    seen = fixture_module.SEEN
    assert not [notice for notice in services.page.notices if "compat_names" in notice]
    assert seen["same devices module"] and seen["same copypaste module"] and seen["same parser"]
    assert seen["device"] == services.models.device
    assert seen["dtype"] == services.models.current.dtype
    assert seen["samplers"] == seen["img2img samplers"] == SAMPLER_NAMES
    assert seen["visible samplers"] == len(SAMPLER_NAMES)
    assert seen["schedules"] == {s.name: s.name for s in SCHEDULES}
    assert seen["styles"] is services.styles
    assert seen["state"].job_count == services.engine.progress.job_count


def test_paths_and_folder_flags_follow_the_data_dir(services, fixture_module):
    data = services.paths.root
    assert fixture_module.SEEN["paths"] == {
        "data_path": str(data),
        "extensions_dir": str(data / "extensions"),
        "models_path": str(data / "models"),
        "script_path": str(REPO_ROOT),
        "extensions_builtin_dir": str(REPO_ROOT / "extensions-builtin"),
    }
    assert fixture_module.SEEN["folders"] == {
        "embeddings_dir": str(data / "embeddings"),
        "hypernetwork_dir": str(data / "models" / "hypernetworks"),
        "lora_dir": str(data / "models" / "Lora"),
        "ckpt_dir": str(data / "models" / "Stable-diffusion"),
        "vae_dir": str(data / "models" / "VAE"),
    }


def _settings_controls(services) -> dict[str, gr.components.Component]:
    from modules.ui import settings

    with gr.Blocks() as page:
        settings.build_tab(services.opts)
    return {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}


def test_option_info_settings_show_in_the_settings_tab(services):
    controls = _settings_controls(services)
    flag = controls["setting_compat_flag"]
    assert isinstance(flag, gr.Checkbox) and flag.label == "Compat flag (requires restart)"
    assert "an explanation" in flag.info
    mode, pick = controls["setting_compat_mode"], controls["setting_compat_pick"]
    level = controls["setting_compat_level"]
    assert isinstance(mode, gr.Radio) and [c[1] for c in mode.choices] == ["a", "b"] and mode.value == "b"
    assert isinstance(pick, gr.Dropdown) and [c[1] for c in pick.choices] == ["x", "y"]
    assert isinstance(level, gr.Slider) and (level.minimum, level.maximum, level.step) == (1, 5, 1)
    text = controls["setting_compat_text"]
    assert isinstance(text, gr.Textbox) and text.lines == 3 and 'href="https://x.test"' in text.info
    assert "settings_compat_test" in controls  # the section's tab, titled by A1111's (id, title) pair
    assert services.opts.info("compat_late").section == "Compat test"


def test_option_info_choices_and_ranges_are_checked(services):
    opts = services.opts
    with pytest.raises(ValueError):
        opts.validated("compat_mode", "c")
    with pytest.raises(ValueError):
        opts.validated("compat_level", 9)
    assert opts.validated("compat_pick", "y") == "y"
    assert opts.info("compat_flag").applies == "restart"


def test_a_refresh_function_gets_a_button_that_updates_the_choices(services):
    from modules.ui import settings

    assert "refresh_compat_pick" in _settings_controls(services)
    with pytest.raises(ValueError):
        services.opts.validated("compat_pick", "z")
    update = settings.refreshed(services.opts, "compat_pick")
    assert update["choices"] == ["x", "y", "z"] and update["value"] == "x"
    assert services.opts.validated("compat_pick", "z") == "z"


def test_option_info_is_a_class_as_in_a1111():
    from modules import shared

    info = shared.OptionInfo(1, "Label", gr.Slider, {"minimum": 0, "maximum": 2}, section=("a", "A"))
    assert isinstance(info, shared.OptionInfo)
    assert info.info("x") is info and info.html("<b>y</b>") is info and info.link("l", "u") is info
    assert info.needs_reload_ui() is info and info.needs_restart() is info
    info.section = ("b", "B")
    assert info.as_setting().section == "B"
    assert shared.options_section(("c", "C"), {"k": info})["k"].section == ("c", "C")


def test_opts_save_takes_a1111s_file_name(services):
    from modules import shared

    services.opts.set("compat_text", "saved")
    shared.opts.save(shared.config_filename)
    assert json.loads(services.paths.config_file.read_text())["compat_text"] == "saved"


def test_an_onchange_function_runs_after_a_change(services):
    from modules import shared

    calls = []
    services.opts.add_option("compat_watched", shared.OptionInfo(1, "Watched", onchange=lambda: calls.append(1)))
    services.opts.set("compat_watched", 2)
    services.opts.set("compat_watched", 2)  # unchanged: not called
    assert calls == [1]


def test_before_image_saved_sees_the_path_the_image_gets(services, fixture_module):
    seen = fixture_module.SEEN
    seen["before saved"].clear()
    seen["after saved"].clear()
    result = generate(services, batch_size=2)
    grid, *images = [str(path) for path in result.paths]  # the grid, shown first, is saved last (as in A1111)
    assert seen["before saved"] == seen["after saved"] == [*images, grid] and "grids" in grid
    assert all(path.is_file() for path in result.paths)


def test_a_callback_may_choose_another_file_name(services, tmp_path):
    wanted = tmp_path / "chosen.png"

    def choose(params):
        params.filename = str(wanted)

    script_callbacks.on_before_image_saved(choose)
    try:
        result = generate(services)
        assert result.paths == [wanted] and wanted.is_file()
        first = generate(services)  # the name is taken now: the next one gets a free variant
        assert first.paths == [tmp_path / "chosen-1.png"]
    finally:
        script_callbacks._callbacks["before_image_saved"].pop()


def test_save_image_calls_the_save_callbacks(services, tmp_path):
    seen = []
    script_callbacks.on_before_image_saved(lambda params: seen.append(("before", params.filename)))
    script_callbacks.on_image_saved(lambda params: seen.append(("after", params.filename)))
    try:
        path, _ = images.save_image(Image.new("RGB", (8, 8)), tmp_path, "", seed=5, prompt="a cat", info="x")
    finally:
        script_callbacks._callbacks["before_image_saved"].pop()
        script_callbacks._callbacks["image_saved"].pop()
    assert seen == [("before", path), ("after", path)] and Path(path).is_file()


def test_extra_generation_params_of_model_hijack_reach_the_infotext(services):
    result = generate(services)
    assert "Compat hijack: on" in result.infotexts[0]


def test_a_model_hijack_raises_naming_the_extension(services, fixture_module):
    with pytest.raises(NotImplementedError, match=rf"'{EXTENSION}'.*model_hijack\.hijack"):
        fixture_module.call_hijack()
    with pytest.raises(NotImplementedError, match=rf"'{EXTENSION}'.*constructor of 'DPM\+\+ 2M'"):
        fixture_module.construct_sampler()
    from modules.img2img import img2img

    with pytest.raises(NotImplementedError, match=r"modules\.img2img\.img2img.*process_images"):
        img2img("task", None, 0, "a prompt")


def test_sd_model_describes_its_checkpoint_as_a1111(services):
    from modules import shared

    info = shared.sd_model.sd_checkpoint_info
    sha = hashlib.sha256(services.models.current.checkpoint.path.read_bytes()).hexdigest()
    assert (info.sha256, info.shorthash, info.hash) == (sha, sha[:10], sha[:8])
    assert info.filename == str(services.paths.sd_models / "demo.safetensors")
    assert (info.model_name, info.title) == ("demo", f"demo.safetensors [{sha[:10]}]")


def test_hashes_use_the_apps_cache(services, tmp_path):
    from modules import hashes

    tensors_file = tmp_path / "lora.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32)}, str(tensors_file))
    raw = tensors_file.read_bytes()
    header = 8 + int.from_bytes(raw[:8], "little")
    assert hashes.sha256_from_cache(tensors_file, "lora/lora") is None
    assert hashes.sha256(tensors_file, "lora/lora") == hashlib.sha256(raw).hexdigest()
    assert hashes.sha256(tensors_file, "lora/lora", use_addnet_hash=True) == hashlib.sha256(raw[header:]).hexdigest()
    assert hashes.sha256_from_cache(tensors_file, "lora/lora", True) == hashlib.sha256(raw[header:]).hexdigest()
    assert hashes.calculate_sha256(tensors_file) == hashlib.sha256(raw).hexdigest()
    assert hashes.addnet_hash_safetensors(io.BytesIO(raw)) == hashlib.sha256(raw[header:]).hexdigest()
    stored = json.loads(services.paths.hash_cache_file.read_text())
    assert str(tensors_file) in stored["hashes"] and str(tensors_file) in stored["hashes-addnet"]


def test_infotext_utils_parse_generation_parameters():
    from modules import infotext_utils

    text = 'a cat\nNegative prompt: dog\nSteps: 5, Sampler: Euler, Size: 64x32, Lora hashes: "a: 1, b: 2"'
    parsed = infotext_utils.parse_generation_parameters(text, skip_fields=["Sampler"])
    assert (parsed["Prompt"], parsed["Negative prompt"], parsed["Steps"]) == ("a cat", "dog", "5")
    assert (parsed["Size-1"], parsed["Size-2"], parsed["Lora hashes"]) == ("64", "32", "a: 1, b: 2")
    assert "Sampler" not in parsed and parsed["Clip skip"] == "1"
    assert infotext_utils.unquote('"a, b"') == "a, b"


def test_infotext_utils_override_settings(services):
    from modules import infotext_utils

    assert ("RNG", "randn_source") in infotext_utils.infotext_to_setting_name_mapping()
    assert ("RNG", "randn_source", "CPU") in infotext_utils.get_override_settings({"RNG": "CPU", "Steps": "5"})
    assert infotext_utils.get_override_settings({"RNG": "CPU"}, skip_fields=["RNG"]) == []
    assert infotext_utils.create_override_settings_dict(["RNG: CPU", "ENSD: 31337"]) == {
        "randn_source": "CPU",
        "eta_noise_seed_delta": 31337,
    }


def test_embedding_db_splits_by_the_loaded_model(services):
    from modules.sd_hijack import model_hijack

    width = services.models.current.prompt_encoder.widths[0]
    folder = services.paths.embeddings
    torch.save({"string_to_param": {"*": torch.zeros(2, width)}}, folder / "fits.pt")
    torch.save({"string_to_param": {"*": torch.zeros(1, width + 8)}}, folder / "other.pt")
    model_hijack.embedding_db.load_textual_inversion_embeddings()
    fits = model_hijack.embedding_db.word_embeddings["fits"]
    assert (fits.shape, fits.vectors, fits.filename) == (width, 2, str(folder / "fits.pt"))
    assert list(model_hijack.embedding_db.skipped_embeddings) == ["other"]


def test_safe_loads_tensors_and_refuses_code(tmp_path):
    from modules import safe
    from modules.models.safe_weights import UnsafeWeightsError

    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(2)}, plain)
    assert torch.equal(safe.load(plain, map_location="cpu")["w"], torch.ones(2))
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(subprocess.Popen, protocol=2))  # unpickling it would import a class
    for loader in (safe.load, safe.unsafe_torch_load):
        with pytest.raises(UnsafeWeightsError):
            loader(evil)


def test_devices_helpers():
    from modules import devices

    with devices.autocast(), devices.without_autocast():
        pass
    devices.test_for_nans(torch.zeros(2), "unet")
    with pytest.raises(devices.NansException, match="vae"):
        devices.test_for_nans(torch.tensor([0.0, float("nan")]), "vae")
    devices.torch_gc()
    assert devices.cpu == torch.device("cpu") and devices.get_optimal_device() == devices.device


def _values(image: Image.Image) -> list[int]:
    return np.asarray(image).ravel().tolist()


def test_create_binary_mask():
    from modules.processing import create_binary_mask

    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (0, 0, 0, 100))
    rgba.putpixel((1, 0), (0, 0, 0, 200))
    assert _values(create_binary_mask(rgba)) == [0, 255]
    assert _values(create_binary_mask(rgba, round=False)) == [100, 200]
    assert _values(create_binary_mask(Image.new("RGB", (1, 1), (255, 255, 255)))) == [255]


def _modules_imports(source: str) -> list[tuple[str, str | None]]:
    """(module, name) for each `import modules.x` / `from modules(.x) import name` in a file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "modules":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("modules.")]
    return found


# Names the extensions import only inside try/except as other apps' (Forge's, SD.Next's) or old A1111's.
OPTIONAL = {("modules", "extensions"), ("modules_forge.forge_version", "version")}


@pytest.mark.parametrize("repo", [TAGCOMPLETE, DYNAMIC_PROMPTS], ids=["tagcomplete", "dynamic-prompts"])
def test_real_extensions_find_every_name_they_import(services, repo):
    if not repo.is_dir():
        pytest.skip(f"no copy of {repo.parent.name} here")
    files = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.split()
    missing = []
    for file in (f for f in files if f.endswith(".py") and not f.startswith(("tests/", "_tools/"))):
        source = subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:{file}"], capture_output=True, text=True, check=True
        ).stdout
        for module_name, name in _modules_imports(source):
            if (module_name, name) in OPTIONAL:
                continue
            try:
                module = __import__(module_name, fromlist=["_"])
                if name is not None and not hasattr(module, name):
                    __import__(f"{module_name}.{name}")  # a submodule
            except ImportError:
                missing.append(f"{file}: {module_name}.{name}")
    assert not missing


def test_tag_autocomplete_loads_and_its_settings_show(services, tmp_path):
    if not TAGCOMPLETE.is_dir():
        pytest.skip("no copy of Tag Autocomplete here")
    extension = services.paths.extensions / "tagcomplete"
    (extension / "scripts").mkdir(parents=True)
    (extension / "tags").mkdir()
    for name in ("model_keyword_support.py", "shared_paths.py", "tag_autocomplete_helper.py", "tag_frequency_db.py"):
        source = subprocess.run(
            ["git", "-C", str(TAGCOMPLETE), "show", f"HEAD:scripts/{name}"], capture_output=True, check=True
        ).stdout
        (extension / "scripts" / name).write_bytes(source)
    static_tmp = REPO_ROOT / "tmp"  # it writes tagAutocompletePath.txt into <script_path>/tmp, as in A1111
    made_tmp = not static_tmp.exists()
    before = {} if made_tmp else {p: p.read_bytes() for p in static_tmp.iterdir() if p.is_file()}
    try:
        services.scripts.load([extension / "scripts"])
        assert not [
            notice for notice in services.page.notices if "tag_autocomplete" in notice or "shared_paths" in notice
        ]
        declared = {key: info for key, info in services.opts.declared().items() if key.startswith("tac_")}
        controls = _settings_controls(services)
    finally:
        if made_tmp:
            shutil.rmtree(static_tmp, ignore_errors=True)
        for path in static_tmp.iterdir() if not made_tmp else ():  # leave the folder as it was
            if path.is_file() and path not in before:
                path.unlink()
        for path, content in before.items():
            path.write_bytes(content)
        services.scripts.load([services.paths.extensions / EXTENSION / "scripts", REPO_ROOT / "scripts"])
    assert len(declared) >= 50 and {info.section for info in declared.values()} == {"Tag Autocomplete"}
    assert all(f"setting_{key}" in controls for key in declared)
    assert isinstance(controls["setting_tac_keymap"], gr.Code)
    assert controls["setting_tac_modelSortOrder"].choices[0][1] == "Name"
    assert "requires restart" in controls["setting_tac_delayTime"].label


def test_a_registered_paste_button_fills_the_tab(services, tmp_path):
    from modules import infotext_utils
    from modules.ui import page as _page  # noqa: F401 - the UI modules import in the page's order
    from modules.ui import txt2img
    from modules.ui.infotext_paste import Quicksettings
    from modules.ui.ui_config import UiConfig

    with gr.Blocks() as page:
        tab = txt2img.build_tab(services, UiConfig(tmp_path / "ui-config.json"), None)
        text, button = gr.Textbox(), gr.Button("Paste")
        quick = Quicksettings({}, gr.Dropdown(), gr.Markdown(), services.models, lambda *a: (gr.update(), ""))
        infotext_utils.registered_param_bindings.clear()
        infotext_utils.register_paste_params_button(infotext_utils.ParamBinding(button, "txt2img", text))
        infotext_utils.connect_paste_params_buttons({"txt2img": tab}, quick)
    assert infotext_utils.registered_param_bindings == []  # wired once, for this page
    paste = next(f for f in page.fns.values() if f.api_name == "extension_paste_0")
    updates = dict(zip(paste.outputs, paste.fn("a dog\nSteps: 7, Sampler: Heun, CFG scale: 3")))
    assert updates[tab.controls["prompt"]]["value"] == "a dog"
    assert updates[tab.controls["steps"]]["value"] == 7 and updates[tab.controls["cfg_scale"]]["value"] == 3


def test_img2img_process_batch_runs_each_image(services, tmp_path):
    from modules.img2img import process_batch
    from modules.processing import StableDiffusionProcessingImg2Img

    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for name, colour in (("a.png", "red"), ("b.png", "blue")):
        Image.new("RGB", (64, 64), colour).save(source / name)
    (source / "c.png").write_bytes(b"not an image")
    p = StableDiffusionProcessingImg2Img(
        prompt="a house", steps=3, width=64, height=64, sampler_name="Euler", denoising_strength=0.5, seed=3
    )
    processed = process_batch(p, str(source), str(target), "", None)
    assert len(processed.images) == len(processed.infotexts) == 2
    assert len(list(target.rglob("*.png"))) == 2


def test_paths_names_before_the_app_starts():
    code = (
        "import modules.paths as p; print(p.data_path, p.script_path, p.models_path, p.extensions_dir, "
        "p.extensions_builtin_dir)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    root = str(REPO_ROOT)
    assert out.stdout.split() == [root, root, f"{root}/models", f"{root}/extensions", f"{root}/extensions-builtin"]
