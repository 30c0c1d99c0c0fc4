"""Separate VAE files on the demo model: listing, switching and back, bad files, infotext, the API, the X/Y/Z
VAE axis and the quicksettings row, with real single-file VAEs written to models/VAE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from script_services import generate, services_with_scripts
from test_page_load import load_events

from modules.errors import ModelLoadError
from modules.models.checkpoints import CheckpointInfo, HashCache
from modules.models.ldm_convert import vae_to_ldm
from modules.sd_vae import list_vae_files, matches_checkpoint

OTHER = "other.safetensors"


def random_vae(config: dict, seed: int) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL.from_config(config)


def write_vae_files(folder: Path, config: dict) -> None:
    """other (original layout, as A1111 users have them), diffusers (diffusers layout), broken (cut short),
    wrong (a VAE of another shape), lora (no VAE at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(vae_to_ldm(random_vae(config, 5)), str(folder / OTHER))
    save_file(dict(random_vae(config, 6).state_dict()), str(folder / "diffusers.safetensors"))
    whole = (folder / OTHER).read_bytes()
    (folder / "broken.safetensors").write_bytes(whole[: len(whole) // 2])
    wide = {**config, "block_out_channels": [2 * width for width in config["block_out_channels"]]}
    save_file(vae_to_ldm(random_vae(wide, 7)), str(folder / "wrong.safetensors"))
    save_file(
        {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32)},
        str(folder / "lora.safetensors"),
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint, demo_model):
    data = tmp_path_factory.mktemp("data")
    write_vae_files(data / "models" / "VAE", dict(demo_model.vae.config))
    made = services_with_scripts(data, demo_checkpoint, [])
    yield made
    made.engine.shutdown()


@pytest.fixture
def own_vae_after(services):
    """Whatever a test switches to, the checkpoint's own VAE is back afterwards."""
    yield
    services.switching.set_vae("None").result(timeout=60)


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0], dtype=np.int16)


def differ(a, b) -> bool:
    return np.abs(pixels(a) - pixels(b)).mean() > 1


def test_vae_files_are_listed_and_automatic_finds_the_checkpoints_own(tmp_path):
    (tmp_path / "VAE").mkdir()
    (tmp_path / "ckpt").mkdir()
    for name in (
        "VAE/b10.pt",
        "VAE/b9.safetensors",
        "VAE/notes.txt",
        "ckpt/model.vae.safetensors",
        "ckpt/model.safetensors",
    ):
        (tmp_path / name).write_bytes(b"x")
    found = list_vae_files(tmp_path / "VAE", [tmp_path / "ckpt"])
    assert [p.name for p in found] == ["b9.safetensors", "b10.pt", "model.vae.safetensors"]
    model = CheckpointInfo(tmp_path / "ckpt" / "model.safetensors", "model.safetensors")
    assert matches_checkpoint(tmp_path / "ckpt" / "model.vae.safetensors", model)
    assert matches_checkpoint(tmp_path / "VAE" / "model.pt", model)
    assert not matches_checkpoint(tmp_path / "VAE" / "model2.pt", model)


def test_a_vae_file_changes_the_images_and_none_brings_the_checkpoints_back(services, own_vae_after):
    base = generate(services)
    assert "VAE" not in base.infotexts[0]
    services.switching.set_vae(OTHER).result(timeout=60)
    other = generate(services)
    assert differ(base, other)
    sha = HashCache(services.paths.hash_cache_file).sha256(services.paths.models / "VAE" / OTHER)
    assert f"VAE hash: {sha[:10]}, VAE: {OTHER}" in other.infotexts[0]
    assert json.loads(services.paths.config_file.read_text())["sd_vae"] == OTHER
    assert services.page.status.endswith(f"VAE: {OTHER}")
    services.switching.set_vae("diffusers.safetensors").result(timeout=60)  # diffusers' key layout loads too
    diffusers_layout = generate(services)
    assert differ(diffusers_layout, other) and differ(diffusers_layout, base)
    services.switching.set_vae("None").result(timeout=60)
    again = generate(services)
    assert np.array_equal(pixels(again), pixels(base))
    assert services.models.current.own_vae_state is None


@pytest.mark.parametrize(
    "name, reason",
    [
        ("broken.safetensors", "damaged"),
        ("wrong.safetensors", "another shape"),
        ("lora.safetensors", "not a VAE this model can use"),
    ],
)
def test_a_bad_vae_file_is_refused_and_the_vae_in_use_stays(services, own_vae_after, name, reason):
    services.switching.set_vae(OTHER).result(timeout=60)
    before = generate(services)
    with pytest.raises(ModelLoadError, match=f"Could not use the VAE {name}: .*{reason}"):
        services.switching.set_vae(name).result(timeout=60)
    assert services.opts.sd_vae == OTHER and services.models.current.vae_name == OTHER
    assert np.array_equal(pixels(generate(services)), pixels(before))
    # A job that asks for it (override_settings) gets a warning and the VAE in use.
    assert name in services.engine.call("sync", lambda ctx: services.switching.sync_vae(name))
    assert services.models.current.vae_name == OTHER


def test_automatic_uses_a_vae_named_like_the_checkpoint(services, own_vae_after):
    base = generate(services)
    sidecar = services.paths.sd_models / "demo.vae.safetensors"
    sidecar.write_bytes((services.paths.models / "VAE" / OTHER).read_bytes())
    try:
        services.vaes.refresh()
        services.models.refresh()
        assert "demo.vae.safetensors" not in services.models.titles()  # a VAE, not a checkpoint
        services.switching.set_vae("Automatic").result(timeout=60)
        automatic = generate(services)
        assert "VAE: demo.vae.safetensors" in automatic.infotexts[0] and differ(automatic, base)
    finally:
        sidecar.unlink()
        services.vaes.refresh()
    services.switching.set_vae("Automatic").result(timeout=60)
    assert np.array_equal(pixels(generate(services)), pixels(base))


def test_infotext_vae_keys_follow_model_and_parse_back():
    from modules.jobs.generation_params import GenerationParams
    from modules.jobs.infotext import create_infotext, parse_infotext

    text = create_infotext(
        GenerationParams(prompt="a cat", steps=3),
        {"Model": "m", "VAE": "v.pt", "VAE hash": "0123456789", "Clip skip": 2},
    )
    assert "Model: m, VAE hash: 0123456789, VAE: v.pt, Clip skip: 2" in text
    parsed = parse_infotext(text)
    assert parsed["VAE"] == "v.pt" and parsed["VAE hash"] == "0123456789"


def test_api_lists_switches_and_overrides_the_vae(services, own_vae_after):
    from modules.api.web_server import create_app

    client = TestClient(create_app(services, []))
    url = "/sdapi/v1"
    names = {item["model_name"]: item["filename"] for item in client.get(f"{url}/sd-vae").json()}
    assert names[OTHER] == str(services.paths.models / "VAE" / OTHER)
    body = {"prompt": "a red house", "steps": 3, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler"}

    def txt2img(**extra) -> dict:
        response = client.post(f"{url}/txt2img", json={**body, **extra})
        assert response.status_code == 200, response.text
        return json.loads(response.json()["info"])

    stored = client.get(f"{url}/options").json()["sd_vae"]
    assert txt2img()["sd_vae_name"] is None
    once = txt2img(override_settings={"sd_vae": OTHER})
    assert once["sd_vae_name"] == OTHER and len(once["sd_vae_hash"]) == 10
    assert services.models.current.vae_name is None and client.get(f"{url}/options").json()["sd_vae"] == stored
    assert client.post(f"{url}/options", json={"sd_vae": OTHER}).status_code == 200
    assert services.models.current.vae_name == OTHER and txt2img()["sd_vae_name"] == OTHER
    refused = client.post(f"{url}/options", json={"sd_vae": "broken.safetensors"})
    assert refused.status_code >= 400 and "broken.safetensors" in refused.text
    assert client.get(f"{url}/options").json()["sd_vae"] == OTHER
    assert client.post(f"{url}/options", json={"sd_vae": "nothing.pt"}).status_code == 422
    late = services.paths.models / "VAE" / "late.safetensors"
    late.write_bytes((services.paths.models / "VAE" / OTHER).read_bytes())
    try:
        assert client.post(f"{url}/refresh-vae").status_code == 200
        assert "late.safetensors" in [item["model_name"] for item in client.get(f"{url}/sd-vae").json()]
    finally:
        late.unlink()
        services.vaes.refresh()


def test_xyz_vae_axis_switches_per_cell_and_restores(services):
    result = generate(
        services, "X/Y/Z plot", {"X type": "VAE", "X values": f"None, {OTHER}", "Include Sub Images": True}
    )
    _grid, *cells = result.images
    assert len(cells) == 2
    first, second = (np.asarray(cell, dtype=np.int16) for cell in cells)
    assert np.abs(first - second).mean() > 1
    assert "VAE" not in result.infotexts[1] and f"VAE: {OTHER}" in result.infotexts[2]
    assert services.models.current.vae_name is None  # the setting (Automatic: the checkpoint's own) again


def quicksettings_row(page) -> list[str]:
    """The elem_ids of the controls in the page's quicksettings row, in order."""
    config = page.get_config_file()
    elem_ids = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}

    def find(node: dict) -> dict | None:
        if elem_ids.get(node["id"]) == "quicksettings":
            return node
        return next((found for child in node.get("children", []) if (found := find(child))), None)

    def inside(node: dict) -> list[str]:  # Gradio wraps form controls in blocks of its own
        return [
            elem_id
            for child in node.get("children", [])
            for elem_id in ([elem_ids[child["id"]]] if elem_ids.get(child["id"]) else inside(child))
        ]

    return inside(find(config["layout"]))


@pytest.fixture(scope="module")
def page(services, tmp_path_factory):
    """The page as built with the default settings."""
    from modules.ui.page import build_page
    from modules.ui.ui_config import UiConfig

    return build_page(services, UiConfig(tmp_path_factory.mktemp("ui") / "ui-config.json"))


def test_quicksettings_list_decides_the_row_and_the_settings_tab_keeps_the_rest(services, page, tmp_path):
    from modules.ui.page import build_page
    from modules.ui.ui_config import UiConfig

    assert quicksettings_row(page) == [
        "setting_sd_model_checkpoint",
        "refresh_sd_model_checkpoint",
        "setting_sd_vae",
        "refresh_sd_vae",
        "setting_CLIP_stop_at_last_layers",
    ]
    vae = next(c for c in page.get_config_file()["components"] if c.get("props", {}).get("elem_id") == "setting_sd_vae")
    assert [choice[0] for choice in vae["props"]["choices"]][:3] == ["Automatic", "None", "broken.safetensors"]
    assert vae["props"]["label"] == "SD VAE"
    with pytest.raises(ValueError, match="can't hold 'no_such_setting'"):
        services.opts.validated("quicksettings_list", ["sd_vae", "no_such_setting"])
    with services.opts.overridden({"quicksettings_list": ["eta_noise_seed_delta", "grid_save"]}):
        other = build_page(services, UiConfig(tmp_path / "ui-config.json"))
    assert quicksettings_row(other) == [
        "setting_sd_model_checkpoint",
        "refresh_sd_model_checkpoint",
        "setting_eta_noise_seed_delta",
        "setting_grid_save",
    ]
    elem_ids = [c.get("props", {}).get("elem_id") for c in other.get_config_file()["components"]]
    assert "setting_sd_vae" in elem_ids and "setting_CLIP_stop_at_last_layers" in elem_ids  # in the Settings tab
    assert elem_ids.count("setting_eta_noise_seed_delta") == 1


def test_what_lists_the_checkpoints_answers_one_at_a_time_in_order(page):
    """The page's load, its status timer and the 🔄 each send the checkpoint dropdown its choices: they wait for one
    another in the queue, so a list read before a 🔄 read the folder can't land after the 🔄's."""
    listing = [fn for fn in page.fns.values() if fn.name in ("load_page", "page_status", "refresh_list")]
    triggers = {(getattr(page.blocks.get(at), "elem_id", None), event) for fn in listing for at, event in fn.targets}
    assert triggers == {(None, "load"), (None, "tick"), ("refresh_sd_model_checkpoint", "click")}
    assert len({fn.concurrency_id for fn in listing}) == 1
    assert {fn.concurrency_limit for fn in listing} == {"default"}  # Gradio's default: one at a time


def test_the_page_asks_for_what_it_refreshes_in_one_load_event(page):
    """The status line, the checkpoint list, both tabs' extra network cards and the face model files (see
    modules/ui/page_load.py for why one event)."""
    (load,) = load_events(page)
    ids = {getattr(block, "elem_id", None) for block in load.outputs}
    cards = {f"{tab}_{kind}_cards" for tab in ("txt2img", "img2img") for kind in ("lora", "checkpoints")}
    assert {"model_status", "setting_sd_model_checkpoint", "extras_face_models_status", *cards} <= ids


def test_a_setting_gone_from_quicksettings_list_is_skipped(tmp_path):
    from modules.options import Options
    from modules.ui.quicksettings import row_keys

    (tmp_path / "config.json").write_text(json.dumps({"quicksettings_list": ["an_uninstalled_extensions", "sd_vae"]}))
    opts = Options(tmp_path / "config.json")
    opts.load()
    assert row_keys(opts) == ["sd_vae"]


def test_a_quicksetting_change_applies_and_persists(services, own_vae_after):
    from modules.ui.quicksettings import apply_setting

    apply_setting(services, "eta_noise_seed_delta", 7.0)
    assert json.loads(services.paths.config_file.read_text())["eta_noise_seed_delta"] == 7
    apply_setting(services, "sd_vae", OTHER)
    assert services.models.current.vae_name == OTHER
    with pytest.raises(ModelLoadError):
        apply_setting(services, "sd_vae", "broken.safetensors")
    assert json.loads(services.paths.config_file.read_text())["sd_vae"] == OTHER
    with pytest.raises(ValueError, match="Clip skip must be at most"):
        apply_setting(services, "CLIP_stop_at_last_layers", 40)


def test_the_settings_tab_swaps_the_vae_too(services, own_vae_after):
    from modules.ui.settings import apply_settings

    ensd = services.opts.eta_noise_seed_delta
    message = apply_settings(
        services.opts,
        ["sd_vae", "eta_noise_seed_delta"],
        ["broken.safetensors", ensd + 9],
        services.user_settings.change,
    )
    assert message.startswith("Nothing was saved") and "Could not use the VAE broken.safetensors" in message
    assert services.opts.sd_vae != "broken.safetensors" and services.opts.eta_noise_seed_delta == ensd
    assert json.loads(services.paths.config_file.read_text()).get("eta_noise_seed_delta", 0) == ensd
    apply_settings(services.opts, ["sd_vae", "eta_noise_seed_delta"], [OTHER, ensd + 9], services.user_settings.change)
    assert services.models.current.vae_name == OTHER and services.opts.eta_noise_seed_delta == ensd + 9


def test_the_xyz_vae_axis_reaches_hires_fixs_own_checkpoint(services, own_vae_after):
    folder = services.paths.models / "Stable-diffusion"
    (folder / "second.safetensors").write_bytes((folder / "demo.safetensors").read_bytes())
    services.models.refresh()
    hires = {"enable_hr": True, "hr_scale": 2, "denoising_strength": 0.5, "hr_checkpoint_name": "second.safetensors"}
    try:
        result = generate(
            services, "X/Y/Z plot", {"X type": "VAE", "X values": f"None, {OTHER}", "Include Sub Images": True}, **hires
        )
        services.switching.set_vae(OTHER).result(timeout=60)
        as_setting = generate(services, **hires)
    finally:
        (folder / "second.safetensors").unlink()
        services.models.refresh()
    _, own, overridden = result.images
    assert "Hires checkpoint: second [" in result.infotexts[2] and f"VAE: {OTHER}" in result.infotexts[2]
    assert np.abs(np.asarray(own, dtype=np.int16) - pixels(as_setting)).mean() > 1, "the VAE file changes the image"
    assert np.array_equal(np.asarray(overridden), pixels(as_setting)), "the cell's VAE decoded the hires pass"
