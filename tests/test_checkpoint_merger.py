"""The Checkpoint Merger on real safetensors files: the demo checkpoint and copies of it with other weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from modules.core.engine import JobContext
from modules.core.file_hashes import legacy_model_hash
from modules.errors import ModelLoadError, UserError
from modules.models.checkpoint_merger import ADD_DIFFERENCE, NO_INTERPOLATION, MergeSettings, merge_checkpoints
from modules.models.ldm_convert import VAE_PREFIX
from modules.models.model_manager import ModelManager
from modules.paths import DataPaths
from modules.sd_vae import VaeLibrary

FIRST_CONV = "model.diffusion_model.input_blocks.0.0.weight"


def perturbed(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: value + torch.randn(value.shape, generator=generator) * 0.1 for key, value in state.items()}


@pytest.fixture(scope="module")
def demo_state(demo_checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(demo_checkpoint)


@pytest.fixture(scope="module")
def library(tmp_path_factory, demo_checkpoint, demo_state):
    """A data dir with checkpoints a (the demo), b and c (other weights), inpaint (a with a 9-channel first conv),
    wide (a with a wider first conv: another architecture), broken (b cut short) and a VAE file in the original
    layout."""
    data = tmp_path_factory.mktemp("merge-data")
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    shutil.copy(demo_checkpoint, folder / "a.safetensors")
    (folder / "a.yaml").write_text("model:\n  params:\n    parameterization: eps\n")
    save_file(perturbed(demo_state, 1), str(folder / "b.safetensors"))
    save_file(perturbed(demo_state, 2), str(folder / "c.safetensors"), metadata={"made_by": "tests"})
    conv = demo_state[FIRST_CONV]
    save_file(
        {**demo_state, FIRST_CONV: torch.cat([conv, torch.ones(conv.shape[0], 5, *conv.shape[2:])], 1)},
        str(folder / "inpaint.safetensors"),
    )
    save_file(
        {**demo_state, FIRST_CONV: torch.zeros(conv.shape[0] * 2, *conv.shape[1:])}, str(folder / "wide.safetensors")
    )
    whole = (folder / "b.safetensors").read_bytes()
    (folder / "broken.safetensors").write_bytes(whole[: len(whole) // 2])
    vae_folder = data / "models" / "VAE"
    vae_folder.mkdir(parents=True)
    vae = {
        key.removeprefix(VAE_PREFIX): value
        for key, value in perturbed(demo_state, 3).items()
        if key.startswith(VAE_PREFIX)
    }
    save_file(vae, str(vae_folder / "other.vae.safetensors"))
    paths = DataPaths.create(str(data))
    models = ModelManager(paths, torch.device("cpu"), torch.float32)
    return models, VaeLibrary(paths, models.hashes)


def merge(library, **settings) -> Path:
    models, vaes = library
    return merge_checkpoints(MergeSettings(**settings), models, vaes).path


def weights(library, name: str) -> dict[str, torch.Tensor]:
    return load_file(library[0].paths.sd_models / name)


def files(library) -> set[str]:
    return {path.name for path in library[0].paths.sd_models.iterdir()}


def test_weighted_sum_is_listed_with_its_hash_and_metadata(library, engine):
    models, _ = library
    a, b = weights(library, "a.safetensors"), weights(library, "b.safetensors")
    ctx = JobContext(engine)
    result = merge_checkpoints(
        MergeSettings("a.safetensors", "b.safetensors", multiplier=0.25), models, library[1], ctx
    )
    assert result.path.name == "0.75(a) + 0.25(b).safetensors"
    merged = load_file(result.path)
    assert merged.keys() == a.keys()
    for key in a:
        torch.testing.assert_close(merged[key], a[key] * 0.75 + b[key] * 0.25)
    assert engine.progress.steps == len(a) and engine.progress.step == len(a)
    sha = models.hashes.cached(result.path)
    assert sha and result.title == f"{result.path.name} [{sha[:10]}]" and result.title in models.titles()
    assert (result.path.with_suffix(".yaml")).read_text() == (models.paths.sd_models / "a.yaml").read_text()
    with safe_open(str(result.path), "pt") as handle:
        metadata = handle.metadata()
    recipe = json.loads(metadata["sd_merge_recipe"])
    hashes = [models.hashes.sha256(models.paths.sd_models / name) for name in ("a.safetensors", "b.safetensors")]
    assert recipe["type"] == "webui" and recipe["interp_method"] == "Weighted sum" and recipe["multiplier"] == 0.25
    assert [recipe["primary_model_hash"], recipe["secondary_model_hash"], recipe["tertiary_model_hash"]] == [
        *hashes,
        None,
    ]
    merged_models = json.loads(metadata["sd_merge_models"])
    assert merged_models[hashes[1]] == {
        "name": "b.safetensors",
        "sd_merge_recipe": None,
        "legacy_hash": legacy_model_hash(models.paths.sd_models / "b.safetensors"),
    }
    assert metadata["format"] == "pt"


def test_add_difference_to_ckpt_and_back_copies_the_inputs_metadata_fields(library):
    path = merge(
        library,
        primary="a.safetensors",
        secondary="b.safetensors",
        tertiary="c.safetensors",
        interpolation=ADD_DIFFERENCE,
        multiplier=0.5,
        checkpoint_format="ckpt",
        config_source="C",
    )
    a, b, c = (weights(library, f"{n}.safetensors") for n in "abc")
    assert path.name == "a + 0.5(b - c).ckpt" and not path.with_suffix(".yaml").exists()
    merged = torch.load(path, weights_only=True)
    for key in a:
        torch.testing.assert_close(merged[key], a[key] + (b[key] - c[key]) * 0.5)
    converted = merge(library, primary=path.name, interpolation=NO_INTERPOLATION, custom_name="from-ckpt")
    assert load_file(converted).keys() == merged.keys()
    meta_path = merge(
        library,
        primary="a.safetensors",
        secondary="b.safetensors",
        tertiary="c.safetensors",
        interpolation=ADD_DIFFERENCE,
        custom_name="with-meta",
    )
    with safe_open(str(meta_path), "pt") as handle:
        assert handle.metadata()["made_by"] == "tests"


def test_no_interpolation_in_float16_with_a_baked_vae_and_discarded_weights(library, demo_state):
    path = merge(
        library,
        primary="a.safetensors",
        interpolation=NO_INTERPOLATION,
        save_as_half=True,
        bake_in_vae="other.vae.safetensors",
        discard_weights=r"^cond_stage_model\.",
        save_metadata=False,
        custom_name="baked",
    )
    vae = load_file(library[1].find("other.vae.safetensors"))
    merged = load_file(path)
    assert path.name == "baked.safetensors"
    assert merged.keys() == {key for key in demo_state if not key.startswith("cond_stage_model.")}
    for key, value in merged.items():
        assert value.dtype == torch.float16
        expected = vae[key.removeprefix(VAE_PREFIX)] if key.startswith(VAE_PREFIX) else demo_state[key]
        torch.testing.assert_close(value, expected.half())
    with safe_open(str(path), "pt") as handle:
        assert not handle.metadata()


def test_an_inpainting_a_keeps_its_extra_channels(library):
    path = merge(library, primary="inpaint.safetensors", secondary="b.safetensors", multiplier=0.5)
    assert path.name == "0.5(inpaint) + 0.5(b).inpainting.safetensors"
    conv = load_file(path)[FIRST_CONV]
    a, b = weights(library, "inpaint.safetensors")[FIRST_CONV], weights(library, "b.safetensors")[FIRST_CONV]
    torch.testing.assert_close(conv[:, :4], (a[:, :4] + b) * 0.5)
    torch.testing.assert_close(conv[:, 4:], a[:, 4:])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"primary": "a.safetensors", "secondary": "wide.safetensors"}, "different architectures"),
        ({"primary": "a.safetensors", "secondary": "inpaint.safetensors"}, "A must be the inpainting model"),
        (
            {
                "primary": "a.safetensors",
                "secondary": "b.safetensors",
                "tertiary": "wide.safetensors",
                "interpolation": ADD_DIFFERENCE,
            },
            "in B and [64, 4, 3, 3] in C",
        ),
        ({"primary": "a.safetensors", "secondary": "b.safetensors", "interpolation": ADD_DIFFERENCE}, "tertiary model"),
        ({"primary": "a.safetensors", "secondary": "missing.safetensors"}, "No checkpoint named"),
        ({"primary": "a.safetensors", "secondary": "broken.safetensors"}, "damaged"),
        ({"primary": "a.safetensors", "interpolation": NO_INTERPOLATION, "discard_weights": "("}, "regular expression"),
        (
            {"primary": "a.safetensors", "interpolation": NO_INTERPOLATION, "discard_weights": "."},
            "nothing would be left",
        ),
        ({"primary": "a.safetensors", "interpolation": NO_INTERPOLATION, "custom_name": "../x"}, "plain file name"),
        ({"primary": "a.safetensors", "interpolation": NO_INTERPOLATION, "custom_name": "b"}, "already exists"),
    ],
)
def test_a_bad_combination_says_why_and_writes_nothing(library, settings, message):
    before = files(library)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(")):
        merge(library, **settings)
    assert files(library) == before


def test_an_interrupted_merge_writes_nothing(library, engine):
    models, vaes = library
    before = files(library)
    ctx = JobContext(engine)
    ctx.interrupted = True
    with pytest.raises(UserError, match="interrupted"):
        merge_checkpoints(MergeSettings("a.safetensors", "b.safetensors", custom_name="stopped"), models, vaes, ctx)
    assert files(library) == before


def test_missing_model_is_a_model_load_error(library):
    with pytest.raises(ModelLoadError):
        merge(library, primary="nope.safetensors", interpolation=NO_INTERPOLATION)
