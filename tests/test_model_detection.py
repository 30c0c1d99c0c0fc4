"""Detection and config fitting, checked on full-size architectures built on the meta device."""

import json

import pytest
from accelerate import init_empty_weights
from tiny_models import tiny_configs

from modules.errors import ModelLoadError
from modules.models import model_detection, model_families
from modules.models.ldm_convert import to_ldm_state_dict
from modules.paths import MODEL_CONFIGS_DIR


def _meta_checkpoint(family: str, configs: dict) -> dict:
    """Original-layout keys and shapes of a model built from `configs`, with no memory behind them."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(configs["unet"])
        vae = AutoencoderKL.from_config(configs["vae"])
        encoders = [CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))]
        if "text_encoder_2" in configs:
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"])))
    return to_ldm_state_dict(family, unet, vae, encoders)


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_full_size_checkpoints_are_recognised_and_fit_the_shipped_configs_exactly(family):
    shipped = model_detection.load_family_configs(family)
    state = _meta_checkpoint(family, shipped)
    assert model_families.detect(state) is model_families.get(family)
    fitted = model_detection.fit_configs(model_families.get(family), state)
    for component, config in shipped.items():
        changed = {k: (config.get(k), v) for k, v in fitted[component].items() if config.get(k) != v}
        assert not changed, f"{component}: {changed}"


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_small_models_of_a_family_get_their_own_shapes(family):
    configs = tiny_configs(family)
    fitted = model_detection.fit_configs(model_families.get(family), _meta_checkpoint(family, configs))
    for component in ("unet", "vae", "text_encoder"):
        for key in (
            "block_out_channels",
            "layers_per_block",
            "cross_attention_dim",
            "hidden_size",
            "num_hidden_layers",
            "intermediate_size",
        ):
            if key in configs[component]:
                assert fitted[component][key] == configs[component][key], (component, key)


def test_demo_config_is_an_sd1_model_after_fitting():
    demo = model_detection.load_family_configs("demo")
    state = _meta_checkpoint("sd1", demo)
    fitted = model_detection.fit_configs(model_families.get("sd1"), state)
    for component in ("unet", "vae", "text_encoder"):
        for key, value in demo[component].items():
            if not key.startswith("_") and key not in ("architectures", "sample_size", "projection_dim"):
                assert fitted[component].get(key) == value, (component, key)


def test_files_that_are_not_checkpoints_are_named_as_such():
    with pytest.raises(ModelLoadError, match="no Stable Diffusion UNet"):
        model_families.detect({"lora_unet_x.weight": None})
    with pytest.raises(ModelLoadError, match="no text encoder"):
        model_families.detect({"model.diffusion_model.input_blocks.0.0.weight": None})


def test_fitted_configs_folder_is_a_diffusers_layout(tmp_path):
    configs = model_detection.load_family_configs("sdxl")
    folder = model_detection.write_config_folder(configs, tmp_path)
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    assert (folder / "scheduler" / "scheduler_config.json").is_file()
    assert (folder / "text_encoder_2" / "config.json").is_file()
    assert model_detection.write_config_folder(configs, tmp_path) == folder
    assert sorted(p.name for p in MODEL_CONFIGS_DIR.iterdir()) == ["demo", "sd1", "sd2", "sdxl"]
