"""LoRA files in the kohya/A1111 format, applied at a weight and removed without reloading."""

import base64
import io
import json

import numpy as np
import pytest
import torch
from network_files import kohya_lora
from PIL import Image
from safetensors.torch import load_file, save_file

from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.prompting.lora import LoraLibrary, addnet_hash
from modules.prompting.networks import Networks
from modules.textual_inversion import EmbeddingDatabase


@pytest.fixture(scope="module")
def demo_model(demo_checkpoint, tmp_path_factory):
    """A model of its own: LoRA adapters stay in a model once loaded."""
    from modules.models.checkpoints import CheckpointInfo
    from modules.sd_models import load_model

    return load_model(
        CheckpointInfo(demo_checkpoint, demo_checkpoint.name),
        torch.device("cpu"),
        torch.float32,
        tmp_path_factory.mktemp("cache"),
    )


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, demo_model):
    folder = tmp_path_factory.mktemp("Lora")
    kohya_lora(folder / "tiny.safetensors", demo_model.unet, demo_model.text_encoders[0], seed=1)
    (folder / "sub").mkdir()
    kohya_lora(folder / "sub" / "other.safetensors", demo_model.unet, None, seed=2)
    state = load_file(str(folder / "tiny.safetensors"))
    save_file(
        {k: (v[:, :3].contiguous() if k.endswith("lora_down.weight") else v) for k, v in state.items()},
        str(folder / "misfit.safetensors"),
    )  # down projections of the wrong width
    return folder


def generate(engine, model, networks, prompt):
    params = GenerationParams(prompt=prompt, steps=3, width=64, height=64, seed=11)
    result = engine.call("t", lambda ctx: Txt2Img(model, params, ctx, RunSettings(), networks).run(), timeout=300)
    return np.asarray(result.images[0]).astype(int), result


def test_lora_applies_at_its_weight_and_leaves_without_a_trace(engine, demo_model, lora_dir, tmp_path):
    networks = Networks(EmbeddingDatabase(tmp_path), LoraLibrary(lora_dir))
    base, _ = generate(engine, demo_model, networks, "a house")
    full, result = generate(engine, demo_model, networks, "a house <lora:tiny:1>")
    half, _ = generate(engine, demo_model, networks, "a house <lora:tiny:0.5>")
    zero, _ = generate(engine, demo_model, networks, "a house <lora:tiny:0>")
    after, _ = generate(engine, demo_model, networks, "a house")
    assert np.abs(full - base).max() > 10
    assert np.abs(half - base).max() > 0 and not np.array_equal(half, full)
    assert np.array_equal(zero, base)
    assert np.array_equal(after, base)  # removing the tag removes the effect, no reload
    assert f'Lora hashes: "tiny: {addnet_hash(lora_dir / "tiny.safetensors")}"' in result.infotexts[0]
    assert result.infotexts[0].startswith("a house <lora:tiny:1>\n")


def test_two_loras_at_once_and_a_unet_only_lora(engine, demo_model, lora_dir, tmp_path):
    networks = Networks(EmbeddingDatabase(tmp_path), LoraLibrary(lora_dir))
    one, _ = generate(engine, demo_model, networks, "a house <lora:tiny:1>")
    both, result = generate(engine, demo_model, networks, "a house <lora:tiny:1> <lora:other:1>")
    assert not np.array_equal(one, both)
    assert "tiny: " in result.infotexts[0] and "other: " in result.infotexts[0]
    assert not result.warnings


def test_missing_and_misfit_loras_are_reported_and_the_job_goes_on(engine, demo_model, lora_dir, tmp_path):
    networks = Networks(EmbeddingDatabase(tmp_path), LoraLibrary(lora_dir))
    base, _ = generate(engine, demo_model, networks, "a house")
    image, result = generate(engine, demo_model, networks, "a house <lora:nowhere:1> <lora:misfit:1> <hypernet:x:1>")
    assert any("LoRA not found: nowhere" in w for w in result.warnings)
    assert any("misfit does not fit" in w for w in result.warnings)
    assert any("'hypernet'" in w for w in result.warnings)
    assert np.array_equal(image, base)
    assert "misfit" not in demo_model.lora_adapters


def test_addnet_hash_skips_the_safetensors_header(tmp_path):
    save_file({"a": torch.ones(2)}, str(tmp_path / "x.safetensors"), metadata={"note": "one"})
    save_file({"a": torch.ones(2)}, str(tmp_path / "y.safetensors"), metadata={"note": "another"})
    assert addnet_hash(tmp_path / "x.safetensors") == addnet_hash(tmp_path / "y.safetensors")


def test_disable_extra_networks_takes_the_tags_out_without_using_them(tmp_path, demo_checkpoint):
    from fastapi.testclient import TestClient
    from script_services import services_with_scripts

    from modules.api.web_server import create_app

    services = services_with_scripts(tmp_path, demo_checkpoint, [])
    try:
        model = services.models.current
        (services.paths.models / "Lora").mkdir(parents=True, exist_ok=True)
        kohya_lora(services.paths.models / "Lora" / "tiny.safetensors", model.unet, model.text_encoders[0], seed=1)
        client = TestClient(create_app(services, []))
        body = {"prompt": "a house", "steps": 3, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler"}

        def txt2img(**extra) -> tuple[bytes, str]:
            response = client.post("/sdapi/v1/txt2img", json={**body, **extra})
            assert response.status_code == 200, response.text
            answer = response.json()
            pixels = Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))).tobytes()
            return pixels, json.loads(answer["info"])["infotexts"][0]

        plain, _ = txt2img()
        tagged, tagged_text = txt2img(prompt="a house <lora:tiny:1>")
        disabled, disabled_text = txt2img(prompt="a house <lora:tiny:1>", disable_extra_networks=True)
    finally:
        services.engine.shutdown()
    assert tagged != plain and "Lora hashes" in tagged_text
    assert disabled == plain, "the tag was taken out of the prompt and the LoRA not used"
    assert "Lora hashes" not in disabled_text and disabled_text.startswith("a house <lora:tiny:1>\n")
