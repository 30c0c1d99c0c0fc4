"""Model families: recognised from real-architecture checkpoints and folders, their attributes checked against
the shipped diffusers configs, a new family as one new file, and the denoiser a loaded model gives the sampler."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import tiny_modules, write_tiny_checkpoint

from modules.errors import ModelLoadError
from modules.models import model_families
from modules.models.checkpoints import CheckpointInfo
from modules.models.model_families.base import UNET_KEY, ModelFamily
from modules.paths import MODEL_CONFIGS_DIR
from modules.prompting.clip_tokenizer import load_clip_tokenizer
from modules.sampling.denoiser import EPSILON, V_PREDICTION
from modules.sd_models import load_model

NAMES = ["sd1", "sd2", "sdxl"]
PACKAGE = Path(model_families.__file__).parent


def _load(path: Path, tmp_path: Path):
    return load_model(CheckpointInfo(path, path.name), torch.device("cpu"), torch.float32, tmp_path / "cache")


@pytest.fixture(scope="module")
def tiny_states(tmp_path_factory) -> dict[str, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("tiny")
    return {name: load_file(str(write_tiny_checkpoint(name, root / f"{name}.safetensors"))) for name in NAMES}


def test_the_registry_holds_the_three_families_in_order():
    assert list(model_families.FAMILIES) == NAMES
    assert [f.label for f in model_families.FAMILIES.values()] == ["SD 1.x", "SD 2.x", "SDXL"]
    with pytest.raises(ValueError, match="sd3"):
        model_families.get("sd3")


@pytest.mark.parametrize("name", NAMES)
def test_each_family_is_recognised_from_a_tiny_real_architecture_checkpoint(name, tiny_states):
    state = tiny_states[name]
    family = model_families.get(name)
    assert model_families.detect(state) is family
    assert [f.name for f in model_families.FAMILIES.values() if f.detect(state)] == [name]


def test_a_checkpoint_without_its_text_encoders_is_refused_by_name(tiny_states):
    state = {k: v for k, v in tiny_states["sdxl"].items() if not k.startswith("conditioner.embedders.1.")}
    with pytest.raises(ModelLoadError, match=r"no text encoder this app recognises \(SD 1.x, SD 2.x or SDXL\)"):
        model_families.detect(state)


@pytest.mark.parametrize("name", NAMES)
def test_attributes_agree_with_the_shipped_configs(name):
    family = model_families.get(name)
    configs = family.load_configs()
    index, vae, scheduler = configs["model_index"], configs["vae"], configs["scheduler"]
    assert [slot.folder for slot in family.text_encoders] == sorted(k for k in index if k.startswith("text_encoder"))
    for slot in family.text_encoders:
        config = configs[slot.folder]
        assert slot.hidden_size == config["hidden_size"]
        assert slot.diffusers_activation == config["hidden_act"]
        assert (index[slot.folder][1] == "CLIPTextModelWithProjection") == slot.pooled
    latents = family.latent_format
    assert latents.channels == vae["latent_channels"] == len(latents.preview_rgb)
    assert latents.vae_scale_factor == 2 ** (len(vae["block_out_channels"]) - 1)
    assert latents.scaling_factor == vae["scaling_factor"]
    assert latents.shift_factor == (vae.get("shift_factor") or 0.0)
    assert {k: scheduler[k] for k in family.beta_schedule.config()} == family.beta_schedule.config()
    assert family.pipeline_class_name == index["_class_name"]
    unet = configs["unet"]
    if family.needs_size_conditioning:  # the time-id embedding's input is what the pooled embedding leaves
        pooled = configs[family.pooled_slot.folder]["projection_dim"]
        time_ids = unet["projection_class_embeddings_input_dim"] - pooled
        assert family.time_ids == time_ids // unet["addition_time_embed_dim"]
    if family.attention_head_dim:
        heads = unet["attention_head_dim"]
        assert [c // family.attention_head_dim for c in unet["block_out_channels"]] == heads


def test_what_tells_the_families_apart():
    sd1, sd2, sdxl = (model_families.get(name) for name in NAMES)
    assert [[s.pad_token for s in f.text_encoders] for f in (sd1, sd2, sdxl)] == [
        ["<|endoftext|>"],
        ["!"],
        ["<|endoftext|>", "!"],
    ]
    assert [(s.penultimate, s.pooled) for s in sdxl.text_encoders] == [(True, False), (True, True)]
    assert not any(s.penultimate or s.pooled for f in (sd1, sd2) for s in f.text_encoders)
    assert [f.needs_size_conditioning for f in (sd1, sd2, sdxl)] == [False, False, True]
    assert [f.probes_v_prediction for f in (sd1, sd2, sdxl)] == [False, True, False]
    # diffusers keeps 23 of OpenCLIP ViT-H's 24 layers for SD 2.x, all of them elsewhere
    assert [[s.max_layers for s in f.text_encoders] for f in (sd1, sd2, sdxl)] == [[None], [23], [None, None]]
    assert sd2.load_configs()["text_encoder"]["num_hidden_layers"] == 23
    assert sd1.latent_format is sd2.latent_format and sdxl.latent_format != sd1.latent_format
    assert model_families.latent_formats() == [sd1.latent_format, sdxl.latent_format]
    assert [sd1.latent_format.approx_nn_file, sdxl.latent_format.approx_nn_file] == ["model.pt", "vaeapprox-sdxl.pt"]
    assert model_families.embedding_key_sets() == [("clip_l", "clip_g")]


@pytest.mark.parametrize("name", [*NAMES, "demo"])
def test_diffusers_folders_are_recognised_by_their_text_encoders(name, tmp_path):
    folder = shutil.copytree(MODEL_CONFIGS_DIR / name, tmp_path / name)
    assert model_families.detect_diffusers(folder) is model_families.get("sd1" if name == "demo" else name)


def test_a_diffusers_folder_loads_as_its_family(tmp_path):
    unet, vae, (encoder,) = tiny_modules("sd2")
    folder = tmp_path / "pipe"
    for part, module in (("unet", unet), ("vae", vae), ("text_encoder", encoder)):
        module.save_pretrained(folder / part)
    for name in ("model_index.json", "scheduler/scheduler_config.json"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(MODEL_CONFIGS_DIR / "sd2" / name, folder / name)
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "prediction_type": V_PREDICTION}))
    model = _load(folder, tmp_path)
    assert model.family is model_families.get("sd2")
    assert model.tokenizers[0].pad_token_id == 0  # "!"
    assert model.denoiser.prediction == V_PREDICTION


@pytest.mark.parametrize("name", ["sd1", "sdxl"])
def test_the_family_builds_its_diffusers_pipeline_over_given_parts(name):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    family = model_families.get(name)
    unet, vae, encoders = tiny_modules(name)
    tokenizers = [load_clip_tokenizer(slot.pad_token) for slot in family.text_encoders]
    scheduler = EulerDiscreteScheduler.from_config(family.load_configs()["scheduler"])
    pipe = family.pipeline(unet, vae, encoders, tokenizers, scheduler)
    assert type(pipe) is {"sd1": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline}[name]
    assert pipe.unet is unet and pipe.vae is vae and pipe.text_encoder is encoders[0]
    if name == "sdxl":
        assert pipe.text_encoder_2 is encoders[1] and pipe.tokenizer_2 is tokenizers[1]
    else:
        assert pipe.safety_checker is None


def test_a_sidecar_yaml_decides_the_prediction_type_for_any_family(tmp_path):
    sd1 = model_families.get("sd1")
    path = tmp_path / "m.safetensors"
    assert sd1.prediction_type(path, None) == EPSILON  # no sidecar, and SD 1.x is never probed
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert sd1.prediction_type(path, None) == V_PREDICTION


def test_the_denoiser_of_an_sd15_model_has_its_training_sigmas(demo_model):
    denoiser = demo_model.denoiser
    assert denoiser is demo_model.denoiser  # built once
    assert denoiser.prediction == EPSILON
    # A1111 with SD 1.5: sigma_max 14.6146, sigma_min 0.0292.
    assert denoiser.sigma_max == pytest.approx(14.6146, abs=1e-4)
    assert denoiser.sigma_min == pytest.approx(0.0292, abs=1e-4)
    # Zero terminal SNR keeps the first step and makes the last ᾱ 4.8973e-08: σ = √((1 − ᾱ)/ᾱ) ≈ 4518.8.
    rescaled = demo_model.make_denoiser(zero_terminal_snr=True)
    assert rescaled.sigma_min == pytest.approx(denoiser.sigma_min, rel=1e-5)
    assert rescaled.sigma_max == pytest.approx(((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08) ** 0.5, rel=1e-4)


def test_a_v_prediction_sd2_model_gives_a_v_denoiser(tmp_path):
    path = write_tiny_checkpoint("sd2", tmp_path / "v.safetensors")
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    model = _load(path, tmp_path)
    assert model.denoiser.prediction == V_PREDICTION == model.prediction_type
    sigma = torch.tensor([2.0])
    c_skip, c_out, _c_in = model.denoiser.scalings(sigma)
    assert float(c_skip) == pytest.approx(1 / 5) and float(c_out) == pytest.approx(-2 / 5**0.5)


TOY = """
from modules.models.model_families.base import CLIP, LatentFormat, ModelFamily, TextEncoderSlot

FAMILY = ModelFamily(
    name="toy", label="Toy", config_folder="sd1",
    text_encoders=(TextEncoderSlot("text_encoder", "text_encoders.toy.", CLIP, "!", 64),),
    latent_format=LatentFormat(name="toy", label="Toy", scaling_factor=1.0, preview_rgb=((1, 0, 0),) * 4),
)
"""


def test_a_new_family_is_one_new_file(tmp_path, monkeypatch, tiny_states):
    copy = shutil.copytree(PACKAGE, tmp_path / "copied_families", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "toy.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = importlib.import_module("copied_families")
        assert list(registry.FAMILIES) == ["sd1", "sd2", "sdxl", "toy"]
        toy = registry.get("toy")
        assert isinstance(toy, ModelFamily)
        state = {
            UNET_KEY: torch.zeros(1),
            "text_encoders.toy.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(1),
        }
        assert registry.detect(state) is toy
        assert registry.detect(tiny_states["sdxl"]).name == "sdxl"
        assert [f.name for f in registry.latent_formats()] == ["sd", "sdxl", "toy"]
    finally:
        for module in [m for m in sys.modules if m == "copied_families" or m.startswith("copied_families.")]:
            del sys.modules[module]
