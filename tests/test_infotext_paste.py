"""Infotext into a tab's controls: typed values, skipped bad values, and finding the named checkpoint."""

import shutil

import pytest
import torch

from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import create_infotext
from modules.models.model_manager import ModelManager
from modules.paths import DataPaths
from modules.ui.infotext_paste import field_updates, find_checkpoint, paste_updates, read_fields

TEXT = (
    'a house, "quoted"\nsecond line\nNegative prompt: fog\n'
    "Steps: 12, Sampler: Euler a, CFG scale: 6.5, Seed: 42, Size: 512x768, Model: beta, Clip skip: 3, "
    'Mask mode: Inpaint not masked, Lora hashes: "tiny: 0123abcd, other: 4567"'
)


def test_every_key_a_field_holds_becomes_a_typed_value_and_the_rest_stays_text():
    pasted = read_fields(TEXT)
    assert pasted.values["prompt"] == 'a house, "quoted"\nsecond line'
    assert pasted.values["negative_prompt"] == "fog"
    assert (pasted.values["steps"], pasted.values["seed"], pasted.values["cfg_scale"]) == (12, 42, 6.5)
    assert (pasted.values["width"], pasted.values["height"]) == (512, 768)
    assert pasted.values["clip_skip"] == 3 and pasted.values["inpainting_mask_invert"] == 1
    assert pasted.rest["Model"] == "beta" and pasted.rest["Lora hashes"] == "tiny: 0123abcd, other: 4567"
    assert pasted.warnings == []


def test_a_last_line_with_fewer_than_three_pairs_is_part_of_the_prompt():
    pasted = read_fields("a portrait\nlight: soft, mood: calm")
    assert pasted.values["prompt"] == "a portrait\nlight: soft, mood: calm"
    assert "steps" not in pasted.values and pasted.values["negative_prompt"] == ""


def test_a_bad_value_is_skipped_with_a_warning_and_the_others_still_apply():
    pasted = read_fields("cat\nSteps: abc, Seed: 5, Size: 64x128, CFG scale: high")
    assert "steps" not in pasted.values and "cfg_scale" not in pasted.values
    assert (pasted.values["seed"], pasted.values["width"], pasted.values["height"]) == (5, 64, 128)
    assert len(pasted.warnings) == 1 and "'abc'" in pasted.warnings[0] and "'high'" in pasted.warnings[0]


def test_updates_only_touch_named_controls_and_show_choice_labels():
    names = ["prompt", "steps", "inpainting_mask_invert", "resize_mode"]
    updates = field_updates(read_fields(TEXT), names)
    assert [u.get("value") for u in updates] == ['a house, "quoted"\nsecond line', 12, "Inpaint not masked", None]
    assert all(u["__type__"] == "update" for u in updates)


def test_what_the_writer_writes_the_paste_reads_back_for_every_field_of_a_job():
    params = GenerationParams(
        prompt="p, q",
        negative_prompt="n",
        steps=9,
        seed=3,
        width=320,
        height=448,
        cfg_scale=4.5,
        clip_skip=2,
        sampler_name="Euler",
        mask_blur=9,
        inpainting_fill=2,
    )
    values = read_fields(create_infotext(params, job="inpaint")).values
    for name in (
        "prompt",
        "negative_prompt",
        "steps",
        "seed",
        "width",
        "height",
        "cfg_scale",
        "clip_skip",
        "sampler_name",
        "mask_blur",
        "inpainting_fill",
    ):
        assert values[name] == getattr(params, name), name


@pytest.fixture(scope="module")
def models(tmp_path_factory, demo_checkpoint):
    """A model manager over real checkpoint files: alpha (hashed) and sub/beta (not hashed yet)."""
    data = tmp_path_factory.mktemp("paste-data")
    paths = DataPaths.create(str(data))
    shutil.copy(demo_checkpoint, paths.sd_models / "alpha.safetensors")
    (paths.sd_models / "sub").mkdir()
    shutil.copy(demo_checkpoint, paths.sd_models / "sub" / "beta.safetensors")
    manager = ModelManager(paths, torch.device("cpu"), torch.float32)
    manager.hashes.sha256(paths.sd_models / "alpha.safetensors")
    return manager


def test_checkpoint_found_by_short_hash_before_name(models):
    sha = models.hashes.cached(models.paths.sd_models / "alpha.safetensors")
    title, warning = find_checkpoint(models, {"Model hash": sha[:10], "Model": "beta"})
    assert title == f"alpha.safetensors [{sha[:10]}]" and warning is None


def test_checkpoint_found_by_name_when_the_hash_is_unknown(models):
    assert find_checkpoint(models, {"Model hash": "ffffffffff", "Model": "beta"}) == ("sub/beta.safetensors", None)


def test_missing_checkpoint_is_a_warning_naming_it_and_no_switch(models):
    title, warning = find_checkpoint(models, {"Model hash": "0123456789", "Model": "gone"})
    assert title is None and "gone [0123456789]" in warning and "keeping" in warning
    assert find_checkpoint(models, {}) == (None, None)


def test_a_file_outside_the_checkpoint_folders_is_never_picked(models, demo_checkpoint):
    title, warning = find_checkpoint(models, {"Model": str(demo_checkpoint)})
    assert title is None and str(demo_checkpoint) in warning


def test_paste_updates_end_with_the_checkpoint_dropdown(models):
    updates = paste_updates(TEXT, ["seed", "clip_skip"], models)
    assert [u.get("value") for u in updates] == [42, 3, "sub/beta.safetensors"]
    assert paste_updates("x\nSteps: 1, Seed: 2, Size: 8x8", ["seed"], models)[-1] == {"__type__": "update"}
