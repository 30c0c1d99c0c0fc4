"""Diffusers -> original-layout conversion, checked by loading back with diffusers' single-file loaders."""

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from modules.models.ldm_convert import clip_to_ldm, open_clip_to_ldm, to_ldm_state_dict, unet_to_ldm, vae_to_ldm
from modules.prompting.clip_tokenizer import load_clip_tokenizer

CONFIGS = Path(__file__).resolve().parent.parent / "modules" / "model_configs"
TEXT_CLASSES = {"CLIPTextModel": CLIPTextModel, "CLIPTextModelWithProjection": CLIPTextModelWithProjection}
PADS = {"sd1": ["<|endoftext|>"], "sd2": ["!"], "sdxl": ["<|endoftext|>", "!"]}

# Changes that turn the demo (SD1-shaped) configs into tiny SD2 / SDXL look-alikes.
TINY_SD2 = {
    "unet": {"attention_head_dim": [2, 4], "use_linear_projection": True, "cross_attention_dim": 32},
    "text_encoder": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "hidden_act": "gelu"},
}
TINY_SDXL = {
    "unet": {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "layers_per_block": 2,
        "transformer_layers_per_block": [1, 2],
        "attention_head_dim": [2, 4],
        "use_linear_projection": True,
        "cross_attention_dim": 32 + 64,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 32 + 6 * 8,
    },
    "vae": {"scaling_factor": 0.13025},
    "text_encoder": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2},
    "text_encoder_2": {
        "architectures": ["CLIPTextModelWithProjection"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "hidden_act": "gelu",
        "projection_dim": 32,
    },
}


def _patch(path: Path, changes: dict) -> None:
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _tiny_folder(family: str, root: Path) -> Path:
    """A config folder for a tiny model of ``family`` (the shipped demo configs for sd1)."""
    if family == "sd1":
        return CONFIGS / "demo"
    folder = root / family
    shutil.copytree(CONFIGS / "demo", folder)
    changes = TINY_SD2 if family == "sd2" else TINY_SDXL
    if family == "sdxl":
        shutil.copy(CONFIGS / "sdxl" / "model_index.json", folder)
        shutil.copy(CONFIGS / "sdxl" / "scheduler" / "scheduler_config.json", folder / "scheduler")
        shutil.copytree(folder / "text_encoder", folder / "text_encoder_2")
    for name, values in changes.items():
        _patch(folder / name / "config.json", values)
    return folder


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fill every parameter with distinct noise so that any misplaced tensor is noticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    return model.eval()


def _text_names(folder: Path) -> list[str]:
    index = json.loads((folder / "model_index.json").read_text())
    return sorted(name for name in index if name.startswith("text_encoder") and index[name][0])


def _build(folder: Path) -> dict[str, torch.nn.Module]:
    index = json.loads((folder / "model_index.json").read_text())
    models = {
        "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(folder), subfolder="unet")),
        "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder), subfolder="vae")),
    }
    for name in _text_names(folder):
        models[name] = TEXT_CLASSES[index[name][1]](CLIPTextConfig.from_pretrained(str(folder), subfolder=name))
    return {name: _randomize(model, seed) for seed, (name, model) in enumerate(models.items())}


def _assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module) -> None:
    want, got = expected.state_dict(), actual.state_dict()
    assert want.keys() == got.keys()
    mismatched = [key for key in want if not torch.equal(want[key], got[key])]
    assert not mismatched, mismatched[:5]


@pytest.fixture(scope="module", params=["sd1", "sd2", "sdxl"])
def checkpoint(request, tmp_path_factory):
    """(family, config folder, original models, path of the converted .safetensors)."""
    family = request.param
    root = tmp_path_factory.mktemp(family)
    folder = _tiny_folder(family, root)
    models = _build(folder)
    texts = [models[name] for name in _text_names(folder)]
    path = root / "model.safetensors"
    save_file(to_ldm_state_dict(family, models["unet"], models["vae"], texts), str(path))
    return family, folder, models, path


def test_pipeline_round_trip(checkpoint):
    family, folder, models, path = checkpoint
    tokenizers = [load_clip_tokenizer(pad) for pad in PADS[family]]
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline.from_single_file(
            str(path), config=str(folder), tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], local_files_only=True
        )
    else:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path), config=str(folder), tokenizer=tokenizers[0], safety_checker=None, local_files_only=True
        )
    for name, model in models.items():
        _assert_same_weights(model, getattr(pipe, name))
    assert pipe.vae.config.scaling_factor == (0.13025 if family == "sdxl" else 0.18215)


def test_component_round_trip_from_state_dict(checkpoint):
    _family, folder, models, path = checkpoint
    state = load_file(str(path))
    unet = UNet2DConditionModel.from_single_file(state, config=str(folder), subfolder="unet", local_files_only=True)
    vae = AutoencoderKL.from_single_file(state, config=str(folder), subfolder="vae", local_files_only=True)
    _assert_same_weights(models["unet"], unet)
    _assert_same_weights(models["vae"], vae)
    for name in _text_names(folder):
        encoder = sfu.create_diffusers_clip_model_from_ldm(
            type(models[name]), state, config=str(folder), subfolder=name, local_files_only=True
        )
        _assert_same_weights(models[name], encoder)


def test_original_key_prefixes(checkpoint):
    family, _, _, path = checkpoint
    keys = load_file(str(path)).keys()
    text_prefixes = {
        "sd1": ["cond_stage_model.transformer.text_model."],
        "sd2": ["cond_stage_model.model."],
        "sdxl": ["conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model."],
    }[family]
    prefixes = ["model.diffusion_model.", "first_stage_model.", *text_prefixes]
    assert all(any(key.startswith(p) for p in prefixes) for key in keys)
    assert all(any(key.startswith(p) for key in keys) for p in prefixes)


def test_inpainting_unet_loads_with_in_channels_override(tmp_path):
    folder = CONFIGS / "demo"
    config = UNet2DConditionModel.load_config(str(folder), subfolder="unet")
    unet = _randomize(UNet2DConditionModel.from_config({**config, "in_channels": 9}), seed=3)
    state = {f"model.diffusion_model.{k}": v for k, v in unet_to_ldm(unet).items()}
    loaded = UNet2DConditionModel.from_single_file(
        state, config=str(folder), subfolder="unet", in_channels=9, local_files_only=True
    )
    assert loaded.config.in_channels == 9
    _assert_same_weights(unet, loaded)


# Full-size shapes on the meta device: diffusers must recognise each family from our keys alone.
FULL_SIZE = [("sd1", "v1"), ("sd2", "v2"), ("sdxl", "xl_base")]


@pytest.mark.parametrize(("family", "model_type"), FULL_SIZE)
def test_full_size_layout_is_recognised(family, model_type):
    folder = CONFIGS / family
    index = json.loads((folder / "model_index.json").read_text())
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(folder), subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder), subfolder="vae"))
        texts = [
            TEXT_CLASSES[index[name][1]](CLIPTextConfig.from_pretrained(str(folder), subfolder=name))
            for name in _text_names(folder)
        ]
    state = to_ldm_state_dict(family, unet, vae, texts)
    assert sfu.infer_diffusers_model_type(state) == model_type
    back = sfu.convert_ldm_unet_checkpoint(state, dict(unet.config))
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in unet.state_dict().items()}
    back = sfu.convert_ldm_vae_checkpoint(state, dict(vae.config))
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in vae.state_dict().items()}


def test_known_original_keys():
    folder = str(CONFIGS / "sdxl")
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder, subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
        big_g = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2"))
    unet_keys, vae_keys, text = unet_to_ldm(unet), vae_to_ldm(vae), open_clip_to_ldm(big_g)
    assert unet_keys["label_emb.0.0.weight"].shape == (1280, 2816)
    assert unet_keys["input_blocks.3.0.op.weight"].shape == (320, 320, 3, 3)
    assert unet_keys["input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight"].shape == (640, 2048)
    assert unet_keys["middle_block.2.emb_layers.1.weight"].shape == (1280, 1280)
    assert unet_keys["output_blocks.2.2.conv.weight"].shape == (1280, 1280, 3, 3)
    assert unet_keys["output_blocks.8.0.skip_connection.weight"].shape == (320, 640, 1, 1)
    assert vae_keys["decoder.up.0.block.0.nin_shortcut.weight"].shape == (128, 256, 1, 1)
    assert vae_keys["decoder.up.3.upsample.conv.weight"].shape == (512, 512, 3, 3)
    assert vae_keys["encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    assert text["model.transformer.resblocks.31.attn.in_proj_weight"].shape == (3840, 1280)
    assert text["model.positional_embedding"].shape == (77, 1280)
    assert text["model.text_projection"].shape == (1280, 1280)
    assert len([k for k in text if k.startswith("model.transformer.resblocks.0.")]) == 12


def test_open_clip_fuses_qkv_and_transposes_projection():
    config = CLIPTextConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    encoder = _randomize(CLIPTextModelWithProjection(config), seed=5)
    layer = encoder.text_model.encoder.layers[0].self_attn
    converted = open_clip_to_ldm(encoder)
    fused = torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight])
    assert torch.equal(converted["model.transformer.resblocks.0.attn.in_proj_weight"], fused)
    assert torch.equal(converted["model.text_projection"], encoder.text_projection.weight.t())


def test_clip_layout_keeps_transformers_names():
    config = CLIPTextConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    converted = clip_to_ldm(CLIPTextModel(config))
    assert "transformer.text_model.encoder.layers.0.self_attn.q_proj.weight" in converted
    assert "transformer.text_model.final_layer_norm.weight" in converted
    with pytest.raises(ValueError):
        clip_to_ldm(CLIPTextModelWithProjection(config))


def test_rejects_unknown_weights_and_bad_arguments():
    with pytest.raises(KeyError):
        unet_to_ldm({"down_blocks.0.resnets.0.norm1.weight": torch.zeros(1), "something.else": torch.zeros(1)})
    with pytest.raises(KeyError):
        vae_to_ldm({"encoder.unknown.weight": torch.zeros(1)})
    with pytest.raises(ValueError):
        to_ldm_state_dict("sd3", {}, {}, [])
    with pytest.raises(ValueError):
        to_ldm_state_dict("sdxl", {}, {}, [{}])
