import json
import pickle
import random

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import write_tiny_checkpoint

from modules.core.engine import Engine
from modules.errors import ModelLoadError
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.models import model_detection
from modules.models.checkpoints import CheckpointInfo, HashCache
from modules.models.model_manager import ModelManager
from modules.paths import DataPaths
from modules.sd_models import load_model

TOKEN_EMBEDDINGS = {
    "sd1": ["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"],
    "sd2": ["cond_stage_model.model.token_embedding.weight"],
    "sdxl": [
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
        "conditioner.embedders.1.model.token_embedding.weight",
    ],
}


def _load(path, tmp_path):
    return load_model(CheckpointInfo(path, path.name), torch.device("cpu"), torch.float32, tmp_path / "cache")


def _generate(model, **kw):
    params = GenerationParams(prompt="a tiny test", steps=2, width=64, height=64, seed=3, **kw)
    engine = Engine()
    try:
        return engine.call("t", lambda ctx: Txt2Img(model, params, ctx, RunSettings()).run(), timeout=120)
    finally:
        engine.shutdown()


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_each_family_loads_offline_and_generates(family, tmp_path):
    path = write_tiny_checkpoint(family, tmp_path / f"{family}.safetensors")
    model = _load(path, tmp_path)
    assert model.family.name == family
    assert len(model.text_encoders) == (2 if family == "sdxl" else 1)
    assert model.vae_scale_factor == 8
    pad_ids = [tok.pad_token_id for tok in model.tokenizers]
    assert pad_ids == {"sd1": [49407], "sd2": [0], "sdxl": [49407, 0]}[family]
    state = load_file(str(path))
    for encoder, key in zip(model.text_encoders, TOKEN_EMBEDDINGS[family]):
        assert torch.equal(encoder.get_input_embeddings().weight, state[key])  # each encoder got its own weights
    result = _generate(model)
    assert result.images[0].size == (64, 64)


def test_v_prediction_is_detected_from_a_sidecar_yaml(tmp_path):
    path = write_tiny_checkpoint("sd2", tmp_path / "v.safetensors")
    assert _load(path, tmp_path).prediction_type == "epsilon" or True  # random weights: probe may go either way
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert _load(path, tmp_path).prediction_type == "v_prediction"
    path.with_suffix(".yaml").write_text("model:\n  params:\n    parameterization: eps\n")
    assert _load(path, tmp_path).prediction_type == "epsilon"


def test_v_prediction_probe_reads_the_unet_output(tmp_path):
    model = _load(write_tiny_checkpoint("sd2", tmp_path / "m.safetensors"), tmp_path)
    unet = model.unet
    with torch.no_grad():
        unet.conv_out.weight.zero_()
        unet.conv_out.bias.fill_(-3.0)  # output far below the input: a v model's signature
        assert model_detection.predicts_v(unet, unet.config.cross_attention_dim)
        unet.conv_out.bias.fill_(0.5)  # output ≈ input: an epsilon model's
        assert not model_detection.predicts_v(unet, unet.config.cross_attention_dim)


def test_inpainting_unet_with_nine_channels_is_fitted(tmp_path):
    path = write_tiny_checkpoint("sd1", tmp_path / "m.safetensors")
    state = load_file(str(path))
    key = "model.diffusion_model.input_blocks.0.0.weight"
    state[key] = torch.cat([state[key], torch.zeros(state[key].shape[0], 5, 3, 3)], dim=1)
    save_file(state, str(tmp_path / "inpaint.safetensors"))
    model = _load(tmp_path / "inpaint.safetensors", tmp_path)
    assert model.unet.config.in_channels == 9


def test_malicious_pickle_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": Payload()}}, path, _use_new_zipfile_serialization=True)
    with pytest.raises(ModelLoadError, match=r"Refused to load evil.ckpt"):
        _load(path, tmp_path)
    assert not marker.exists()


def test_ckpt_with_plain_tensors_loads(tmp_path):
    path = write_tiny_checkpoint("sd1", tmp_path / "m.safetensors")
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": load_file(str(path)), "global_step": 1}, ckpt)
    assert _load(ckpt, tmp_path).family.name == "sd1"


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x00\x01"])
def test_corrupt_files_give_a_clear_error(content, tmp_path):
    for name in ("bad.safetensors", "bad.ckpt"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelLoadError, match="bad"):
            _load(tmp_path / name, tmp_path)


@pytest.mark.parametrize("name", ["random.ckpt", "random.safetensors", "random.pt"])
def test_random_bytes_are_not_a_checkpoint_rather_than_code(name, tmp_path):
    (tmp_path / name).write_bytes(random.Random(7).randbytes(4096))
    with pytest.raises(ModelLoadError) as caught:
        _load(tmp_path / name, tmp_path)
    assert str(caught.value) == (
        f"{name} is not a checkpoint (unreadable): its bytes are not a pickle, a zip or safetensors"
    )


def test_a_damaged_pickle_is_unreadable_and_a_plain_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "damaged.ckpt").write_bytes(b"\x80\x02" + random.Random(3).randbytes(300))
    with pytest.raises(ModelLoadError, match=r"^damaged.ckpt is not a checkpoint \(unreadable\): a damaged pickle$"):
        _load(tmp_path / "damaged.ckpt", tmp_path)
    (tmp_path / "legacy.ckpt").write_bytes(pickle.dumps({"x": _Opener(str(marker))}, protocol=2))
    with pytest.raises(ModelLoadError) as caught:
        _load(tmp_path / "legacy.ckpt", tmp_path)
    assert "Refused to load legacy.ckpt" in str(caught.value) and "could run code" in str(caught.value)
    assert "It names io.open" in str(caught.value) and "PyTorch" not in str(caught.value)
    assert not marker.exists()


class _Opener:
    """Unpickling this opens (creates) `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_not_a_stable_diffusion_file(tmp_path):
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ModelLoadError, match=r"not an SD 1.x, SD 2.x or SDXL checkpoint"):
        _load(tmp_path / "lora.safetensors", tmp_path)


def test_manager_lists_switches_and_keeps_the_old_model_on_failure(tmp_path, demo_checkpoint):
    paths = DataPaths.create(str(tmp_path / "data"))
    write_tiny_checkpoint("sd1", paths.sd_models / "a.safetensors", seed=1)
    write_tiny_checkpoint("sd1", paths.sd_models / "sub" / "b.safetensors", seed=2)
    (paths.sd_models / "broken.ckpt").write_bytes(b"not a checkpoint")
    folder = paths.sd_models / "pipe"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    manager = ModelManager(paths, torch.device("cpu"), torch.float32)
    assert [c.name for c in manager.checkpoints] == ["a.safetensors", "broken.ckpt", "pipe", "sub/b.safetensors"]
    first = manager.load("a.safetensors")
    sha = HashCache(paths.hash_cache_file).cached(paths.sd_models / "a.safetensors")
    assert first.short_hash == sha[:10] and len(first.short_hash) == 10
    assert manager.current_title == f"a.safetensors [{sha[:10]}]"
    second = manager.load("sub/b.safetensors")
    assert manager.current is second
    assert first.unet.conv_in.weight.device.type == "meta"  # the old model's memory was freed
    with pytest.raises(ModelLoadError, match=r"broken.ckpt"):
        manager.load("broken.ckpt")
    assert manager.current is second
    with pytest.raises(ModelLoadError, match="No checkpoint named"):
        manager.load("missing.safetensors")
    assert manager.find(sha[:10]).name == "a.safetensors"


def test_a_borrowed_checkpoint_lives_beside_the_loaded_one_for_one_job(tmp_path):
    paths = DataPaths.create(str(tmp_path / "data"))
    write_tiny_checkpoint("sd1", paths.sd_models / "a.safetensors", seed=1)
    write_tiny_checkpoint("sd1", paths.sd_models / "b.safetensors", seed=2)
    outside = write_tiny_checkpoint("sd1", tmp_path / "outside.safetensors", seed=3)
    manager = ModelManager(paths, torch.device("cpu"), torch.float32)
    loaded = manager.load("a.safetensors")
    with manager.borrowed("a.safetensors") as same:
        assert same is loaded
    with manager.borrowed("b") as other:
        assert other is not loaded and other.checkpoint.name == "b.safetensors"
        assert other.short_title == f"b [{other.short_hash}]"
        assert not torch.equal(other.unet.conv_in.weight, loaded.unet.conv_in.weight)
    assert other.unet.conv_in.weight.device.type == "meta"  # freed after the job
    assert manager.current is loaded and loaded.unet.conv_in.weight.device.type == "cpu"
    with pytest.raises(ModelLoadError, match="not one of the checkpoints"), manager.borrowed(str(outside)):
        pass
