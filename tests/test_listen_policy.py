"""What page and API users may change on a server other machines can reach (--listen), through a real app.py:
no server folders without --allow-server-paths, no extension state or index fetches without
--enable-insecure-extension-access, no limit raised by override_settings, only listed checkpoints; and
--hide-ui-dir-config hides and refuses the folder fields."""

from __future__ import annotations

import json

import pytest
import requests
from app_process import endpoint_args, with_demo_checkpoint

SMALL = {"prompt": "x", "steps": 1, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def client(listening_app):
    from gradio_client import Client

    return Client(listening_app[0], verbose=False)


def page_error(call) -> str:
    """The message of the error a page endpoint answered with."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        call()
    return str(caught.value)


def test_img2img_batch_and_extras_folders_are_refused(listening_app, client):
    _, data, _ = listening_app
    inside = str(data / "inputs")
    args = endpoint_args(
        client,
        "/img2img",
        {
            "img2img mode": 5,
            "Input directory": inside,
            "Output directory": str(data / "outputs" / "batch"),
            "Width": 64,
            "Height": 64,
            "Sampling steps": 1,
        },
    )
    assert "--allow-server-paths" in page_error(lambda: client.predict(*args, api_name="/img2img"))
    extras = endpoint_args(client, "/extras", {"Extras mode": 2, "Input directory": inside})
    assert "--allow-server-paths" in page_error(lambda: client.predict(*extras, api_name="/extras"))
    assert not (data / "outputs" / "batch").exists()


def test_a_prompt_line_may_not_name_an_output_folder(listening_app):
    url, _, root = listening_app
    line = f'--prompt "a cat" --outpath_samples "{root / "evil"}"'
    job = {
        **SMALL,
        "save_images": True,
        "script_name": "prompts from file or textbox",
        "script_args": [False, False, "start", line],
    }
    answer = requests.post(url + "sdapi/v1/txt2img", json=job, timeout=60)
    assert answer.status_code == 422 and "--outpath_samples" in answer.text and "--allow-server-paths" in answer.text
    assert not (root / "evil").exists()


def test_output_folder_settings_are_refused_from_the_page_and_the_api(listening_app, client):
    url, _data, root = listening_app
    label = "Output folder for txt2img images"
    message = client.predict(
        *endpoint_args(client, "/settings_apply", {label: str(root / "elsewhere")}), api_name="/settings_apply"
    )
    assert message.startswith("Nothing was saved") and "--allow-server-paths" in message
    answer = requests.post(url + "sdapi/v1/options", json={"outdir_txt2img_samples": str(root)}, timeout=30)
    assert answer.status_code == 422 and "outdir_txt2img_samples" in answer.text
    job = {**SMALL, "save_images": True, "override_settings": {"outdir_txt2img_samples": str(root / "evil")}}
    answer = requests.post(url + "sdapi/v1/txt2img", json=job, timeout=60)
    assert answer.status_code == 422 and "--allow-server-paths" in answer.text
    assert (
        requests.get(url + "sdapi/v1/options", timeout=10).json()["outdir_txt2img_samples"] == "outputs/txt2img-images"
    )
    assert not (root / "evil").exists() and not (root / "elsewhere").exists()


def test_extension_state_and_the_index_are_locked(listening_app, client):
    url, data, _ = listening_app
    for values in ({"disabled_extensions": ["some-ext"]}, {"extensions_index_url": "http://127.0.0.1:9/index.json"}):
        answer = requests.post(url + "sdapi/v1/options", json=values, timeout=30)
        assert answer.status_code == 422 and "--enable-insecure-extension-access" in answer.text, answer.text
    config = json.loads((data / "config.json").read_text())
    assert config.get("disabled_extensions", []) == [] and "127.0.0.1:9" not in json.dumps(config)
    _, message = client.predict("http://127.0.0.1:9/index.json", api_name="/extensions_index")
    assert "--enable-insecure-extension-access" in message


def test_override_settings_may_lower_a_limit_but_not_raise_it(listening_app):
    url, _, _ = listening_app
    raised = requests.post(
        url + "sdapi/v1/txt2img", json={**SMALL, "override_settings": {"max_pixels": 10**9}}, timeout=60
    )
    assert raised.status_code == 422 and "override_settings.max_pixels" in raised.text
    lowered = requests.post(
        url + "sdapi/v1/txt2img",
        timeout=60,
        json={**SMALL, "override_settings": {"max_pixels": 64 * 64, "max_steps": 5}},
    )
    assert lowered.status_code == 200, lowered.text
    too_big = requests.post(
        url + "sdapi/v1/txt2img", json={**SMALL, "width": 128, "override_settings": {"max_pixels": 64 * 64}}, timeout=60
    )
    assert too_big.status_code == 422 and "Largest image size allowed" in too_big.text


def test_the_checkpoint_dropdown_loads_only_listed_checkpoints(listening_app, client):
    url, data, root = listening_app
    outside = str(root / "outside.safetensors")
    _, status = client.predict(outside, api_name="/change_checkpoint")
    assert "not one of the checkpoints" in status
    assert requests.get(url + "sdapi/v1/options", timeout=10).json()["sd_model_checkpoint"].startswith("demo")
    assert "outside" not in (data / "config.json").read_text()


def test_hide_ui_dir_config_hides_and_refuses_the_folder_fields(tmp_path, demo_checkpoint):
    from app import create_services
    from modules.cmd_args import parse_args
    from modules.errors import UserError
    from modules.jobs.generation_params import GenerationParams
    from modules.ui.page import build_page
    from modules.ui.ui_config import UiConfig

    with_demo_checkpoint(tmp_path, demo_checkpoint)
    services = create_services(parse_args(["--data-dir", str(tmp_path), "--hide-ui-dir-config"]))
    try:
        page = build_page(services, UiConfig(tmp_path / "ui-config.json"))
        config = page.get_config_file()
        tabs = {
            c["props"].get("elem_id") or c["props"].get("id"): c["props"]
            for c in config["components"]
            if c.get("type") == "tabitem"
        }
        assert tabs["extras_batch_directory_tab"]["visible"] is False and tabs["batch_tab"]["visible"] is False
        assert tabs["extras_single_tab"]["visible"] is not False
        labels = {c["props"].get("label") for c in config["components"]}
        assert "Output folder for txt2img images" not in labels and "Always save all generated images" in labels
        with pytest.raises(UserError, match="--hide-ui-dir-config"):
            services.jobs.img2img_batch(GenerationParams(**SMALL), str(tmp_path), str(tmp_path / "out"))
        with pytest.raises(UserError, match="--hide-ui-dir-config"):
            services.user_settings.change({"outdir_txt2img_samples": "outputs/elsewhere"})
    finally:
        services.engine.shutdown()


def test_settings_of_the_wrong_type_are_a_422_and_change_nothing(listening_app):
    url, data, _ = listening_app
    before = requests.get(url + "sdapi/v1/options", timeout=10).json()
    for values in (
        {"outdir_txt2img_samples": None},
        {"s_noise": "nan"},
        {"quicksettings_list": 5},
        {"CLIP_stop_at_last_layers": 2, "grid_save": "yes"},
    ):
        answer = requests.post(url + "sdapi/v1/options", json=values, timeout=30)
        assert answer.status_code == 422, (values, answer.text)
    assert requests.get(url + "sdapi/v1/options", timeout=10).json() == before
    assert json.loads((data / "config.json").read_text()).get("CLIP_stop_at_last_layers", 1) == 1
