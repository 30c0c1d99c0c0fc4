"""The shipped component configs build the known architectures (on the meta device)."""

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, EulerDiscreteScheduler, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

CONFIGS = Path(__file__).resolve().parent.parent / "modules" / "model_configs"
FAMILIES = ["sd1", "sd2", "sdxl", "demo"]
TEXT_CLASSES = {"CLIPTextModel": CLIPTextModel, "CLIPTextModelWithProjection": CLIPTextModelWithProjection}

# Parameter counts of the reference models (UNet, VAE, then each text encoder).
EXPECTED_PARAMS = {
    "sd1": (859_520_964, 83_653_863, [123_060_480]),
    "sd2": (865_910_724, 83_653_863, [340_387_840]),
    "sdxl": (2_567_463_684, 83_653_863, [123_060_480, 694_659_840]),
    "demo": (803_204, 1_028_935, [3_301_056]),
}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _text_encoder_folders(family: str) -> list[str]:
    index = json.loads((CONFIGS / family / "model_index.json").read_text())
    return sorted(name for name in index if name.startswith("text_encoder") and index[name][0])


def _build(family: str) -> dict[str, torch.nn.Module]:
    folder = str(CONFIGS / family)
    index = json.loads((CONFIGS / family / "model_index.json").read_text())
    with init_empty_weights():
        models = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae")),
        }
        for name in _text_encoder_folders(family):
            config = CLIPTextConfig.from_pretrained(folder, subfolder=name)
            models[name] = TEXT_CLASSES[index[name][1]](config)
    return models


@pytest.fixture(scope="module", params=FAMILIES)
def family_models(request):
    return request.param, _build(request.param)


def test_parameter_counts(family_models):
    family, models = family_models
    unet_params, vae_params, text_params = EXPECTED_PARAMS[family]
    assert next(models["unet"].parameters()).device.type == "meta"
    assert _count(models["unet"]) == unet_params
    assert _count(models["vae"]) == vae_params
    names = _text_encoder_folders(family)
    assert [_count(models[name]) for name in names] == text_params


def test_text_width_matches_unet_context(family_models):
    family, models = family_models
    widths = [models[name].config.hidden_size for name in _text_encoder_folders(family)]
    assert sum(widths) == models["unet"].config.cross_attention_dim
    if family == "sdxl":
        projection = models["text_encoder_2"].config.projection_dim
        unet = models["unet"].config
        assert unet.addition_embed_type == "text_time"
        assert unet.projection_class_embeddings_input_dim == projection + 6 * unet.addition_time_embed_dim


@pytest.mark.parametrize("family", FAMILIES)
def test_vae_downsamples_8x_with_4_latent_channels(family):
    vae = AutoencoderKL.load_config(str(CONFIGS / family), subfolder="vae")
    assert len(vae["block_out_channels"]) == 4 and vae["latent_channels"] == 4
    assert vae["scaling_factor"] == (0.13025 if family == "sdxl" else 0.18215)


@pytest.mark.parametrize("family", FAMILIES)
def test_scheduler_config(family):
    folder = str(CONFIGS / family)
    cls = EulerDiscreteScheduler if family == "sdxl" else PNDMScheduler
    scheduler = cls.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    config = scheduler.config
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert config.prediction_type == "epsilon" and config.steps_offset == 1
    assert config.num_train_timesteps == 1000
    if cls is PNDMScheduler:
        assert config.skip_prk_steps and not config.set_alpha_to_one and not config.clip_sample


@pytest.mark.parametrize("family", FAMILIES)
def test_model_index_lists_shipped_components(family):
    root = CONFIGS / family
    index = json.loads((root / "model_index.json").read_text())
    expected = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
    assert index["_class_name"] == expected
    for name, (library, _) in ((k, v) for k, v in index.items() if isinstance(v, list)):
        if library is not None and not name.startswith("tokenizer"):
            config = "scheduler_config.json" if name == "scheduler" else "config.json"
            assert (root / name / config).is_file(), name
    assert not list(root.glob("tokenizer*")), "tokenizers are built by modules.prompting.clip_tokenizer"


def test_demo_shape():
    unet = UNet2DConditionModel.load_config(str(CONFIGS / "demo"), subfolder="unet")
    assert unet["block_out_channels"] == [32, 64] and unet["layers_per_block"] == 1
    assert unet["down_block_types"] == ["CrossAttnDownBlock2D", "DownBlock2D"]
    assert unet["up_block_types"] == ["UpBlock2D", "CrossAttnUpBlock2D"]
    text = CLIPTextConfig.from_pretrained(str(CONFIGS / "demo"), subfolder="text_encoder")
    assert (text.vocab_size, text.max_position_embeddings, text.hidden_act) == (49408, 77, "quick_gelu")
