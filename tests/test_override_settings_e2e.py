"""Infotext sets A1111's sampling settings for its job, through app.py for real (page and API on one port): the API's
`infotext` fills override_settings unless the request names the setting; the page's ↙️ and PNG Info's "Send to"
fill the tab's "Override settings" with the settings that differ, and Generate runs with the entries left.

What a job ran with is read back from its infotext: the job writes the settings its sampler used (RNG, ENSD, Eta,
Sigma churn) as A1111 does, and an extension script (as extensions do) writes the settings in force while its
`process` hook runs."""

from __future__ import annotations

import html
import json
import re

import pytest
import requests
from app_process import endpoint_args, running_app, with_demo_checkpoint
from PIL import Image, PngImagePlugin

from modules.jobs.infotext import parse_infotext

PROBED = ("randn_source", "eta_noise_seed_delta", "eta_ancestral", "s_churn")
PROBE_SCRIPT = f"""import json

from modules import scripts, shared


class SettingsProbe(scripts.Script):
    def title(self):
        return "Settings probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        p.extra_generation_params["Probe"] = json.dumps({{key: getattr(shared.opts, key) for key in {PROBED!r}}})
"""
SETTINGS = "RNG: CPU, ENSD: 31337, Eta: 0.5, Sigma churn: 0.2"
TEXT = f"a fox\nSteps: 2, Sampler: Euler a, Seed: 5, Size: 64x64, {SETTINGS}"
ENTRIES = ["RNG: CPU", "ENSD: 31337", "Eta: 0.5", "Sigma churn: 0.2"]
FROM_TEXT = {"randn_source": "CPU", "eta_noise_seed_delta": 31337, "eta_ancestral": 0.5, "s_churn": 0.2}
SERVER_SETTINGS = {"randn_source": "NV", "eta_noise_seed_delta": 0, "eta_ancestral": 1.0, "s_churn": 0.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_checkpoint):
    """app.py with --api, the demo model, randn_source NV (neither the text's CPU nor a missing RNG's GPU) and
    the probe extension."""
    data = tmp_path_factory.mktemp("override-data")
    with_demo_checkpoint(data, demo_checkpoint)
    (data / "config.json").write_text(json.dumps({"randn_source": "NV"}))
    probe = data / "extensions" / "settings-probe" / "scripts" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(PROBE_SCRIPT)
    with running_app(data, "--api", model_name="demo.safetensors") as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def ran_with(infotext: str) -> dict:
    """The settings the probe saw in force during the job."""
    return json.loads(parse_infotext(infotext)["Probe"])


def txt2img_api(server: str, body: dict) -> str:
    response = requests.post(f"{server}sdapi/v1/txt2img", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])["infotexts"][0]


def test_api_infotext_sets_the_settings_it_names_for_its_job(server):
    infotext = txt2img_api(server, {"infotext": TEXT})
    assert ran_with(infotext) == FROM_TEXT
    assert "Steps: 2, Sampler: Euler a," in infotext
    assert all(entry in infotext for entry in ("RNG: CPU", "ENSD: 31337", "Eta: 0.5")), infotext
    assert "Sigma churn: 0.2" in txt2img_api(server, {"infotext": TEXT.replace("Euler a", "Euler")})
    options = requests.get(f"{server}sdapi/v1/options", timeout=30).json()
    assert {key: options[key] for key in PROBED} == SERVER_SETTINGS  # for that job only


def test_api_request_settings_win_over_the_infotext_and_no_rng_means_gpu(server):
    text = "a fox\nSteps: 2, Sampler: Euler a, Seed: 5, Size: 64x64, ENSD: 31337, Eta: 0.5, Sigma churn: 0.2"
    infotext = txt2img_api(server, {"infotext": text, "override_settings": {"eta_noise_seed_delta": 7}, "s_churn": 0.4})
    assert ran_with(infotext) == {
        "randn_source": "GPU",
        "eta_noise_seed_delta": 7,
        "eta_ancestral": 0.5,
        "s_churn": 0.4,
    }
    assert "ENSD: 7" in infotext and "RNG:" not in infotext  # GPU, the default, isn't written (as in A1111)


def outputs(client, api_name: str, *args) -> dict:
    """An endpoint's outputs by label."""
    returns = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["returns"]
    return {r["label"]: value for r, value in zip(returns, client.predict(*args, api_name=api_name))}


def generate(client, entries: list[str], tab: str = "txt2img", **values) -> str:
    """Generate on a tab of the page with these Override settings; the infotext shown under the gallery."""
    values = {
        "Prompt": "a fox",
        "Sampling method": "Euler a",
        "Sampling steps": 2,
        "Width": 64,
        "Height": 64,
        "Seed": 5,
        "Override settings": entries,
        **values,
    }
    _, info = client.predict(*endpoint_args(client, f"/{tab}", values), api_name=f"/{tab}")
    return html.unescape(re.sub(r"</?p[^>]*>", "", info.replace("<br>", "\n")))


def test_paste_fills_override_settings_and_generate_runs_with_the_entries_left(client):
    pasted = outputs(client, "/txt2img_paste", TEXT)["Override settings"]
    assert pasted["value"] == ENTRIES and pasted["visible"] is True
    assert outputs(client, "/txt2img_paste", TEXT)["Sampling method"]["value"] == "Euler a"
    infotext = generate(client, pasted["value"])
    assert ran_with(infotext) == FROM_TEXT
    assert all(entry in infotext for entry in ("RNG: CPU", "ENSD: 31337", "Eta: 0.5")), infotext
    without_rng = generate(client, ENTRIES[1:])  # an entry removed by hand is not applied
    assert ran_with(without_rng) == {**FROM_TEXT, "randn_source": "NV"} and "RNG: NV" in without_rng
    assert ran_with(generate(client, [])) == SERVER_SETTINGS


def test_img2img_batch_runs_with_the_override_settings(client, tmp_path):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 64), "teal").save(tmp_path / "in" / "teal.png")
    folders = {"img2img mode": 5, "Input directory": str(tmp_path / "in"), "Output directory": str(tmp_path / "out")}
    infotext = generate(client, ENTRIES, "img2img", **folders)
    assert all(entry in infotext for entry in ("RNG: CPU", "ENSD: 31337", "Eta: 0.5")), infotext
    assert "RNG: NV" in generate(client, [], "img2img", **folders)


def test_a_missing_rng_pastes_gpu_and_text_without_settings_hides_the_dropdown(client):
    pasted = outputs(client, "/img2img_paste", "a fox\nSteps: 2, Seed: 5, Size: 64x64")["Override settings"]
    assert pasted["value"] == ["RNG: GPU"] and pasted["visible"] is True
    pasted = outputs(client, "/img2img_paste", "a fox\nSteps: 2, Seed: 5, RNG: NV")["Override settings"]
    assert pasted["value"] == [] and pasted["visible"] is False


def test_png_info_send_fills_override_settings(client, tmp_path):
    from gradio_client import handle_file

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", TEXT)
    Image.new("RGB", (16, 16)).save(tmp_path / "sent.png", pnginfo=info)
    sent = outputs(client, "/pnginfo_send_to_txt2img", handle_file(str(tmp_path / "sent.png")))
    assert sent["Override settings"]["value"] == ENTRIES


def test_an_entry_that_names_no_setting_is_refused_before_the_job(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Override settings: 'Sharpness: 3' names no setting"):
        generate(client, ["ENSD: 5", "Sharpness: 3"])
    with pytest.raises(AppError, match=r"Override settings: 'Eta: 3' can't be used: .* must be at most 1.0"):
        generate(client, ["Eta: 3"])
