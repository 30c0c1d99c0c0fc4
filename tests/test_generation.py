"""txt2img end to end on the demo model: seeds, the sampler settings, interrupt/skip, limits."""

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from modules.errors import UserError
from modules.images import FileNaming, SaveFormat, read_infotext
from modules.jobs.generation import RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.sampling.passes import SamplingSettings


def run(engine, model, settings=None, **kw):
    params = GenerationParams(**{"prompt": "a red house", "steps": 8, "width": 64, "height": 64, "seed": 5, **kw})
    return engine.call("txt2img", lambda ctx: Txt2Img(model, params, ctx, settings or RunSettings()).run(), timeout=300)


def pixels(image):
    return np.asarray(image).astype(int)


def test_same_seed_same_pixels_and_batch_uses_seed_plus_i(engine, demo_model):
    batch = run(engine, demo_model, batch_size=2, n_iter=2, seed=100)
    assert batch.seeds == [100, 101, 102, 103]
    again = run(engine, demo_model, seed=101)
    # A batch of two may take other CPU kernels than a batch of one (AVX2 oneDNN does), so allow a level of rounding.
    diff = np.abs(pixels(batch.images[1]) - pixels(again.images[0]))
    assert diff.max() <= 1
    assert np.abs(pixels(batch.images[0]) - pixels(batch.images[1])).mean() > 5
    assert "Seed: 101," in batch.infotexts[1]


def test_random_seed_is_resolved_and_written(engine, demo_model):
    result = run(engine, demo_model, seed=-1, steps=2)
    assert result.params.seed >= 0
    assert f"Seed: {result.seeds[0]}," in result.infotexts[0]


def test_empty_prompt_is_allowed(engine, demo_model):
    result = run(engine, demo_model, prompt="", steps=2)
    assert result.infotexts[0].startswith("Steps: 2,")


def test_clip_skip_changes_the_image_and_the_infotext(engine, demo_model):
    one = run(engine, demo_model, steps=3)
    two = run(engine, demo_model, steps=3, clip_skip=2)
    assert "Clip skip: 2" in two.infotexts[0] and "Clip skip" not in one.infotexts[0]
    assert not np.array_equal(pixels(one.images[0]), pixels(two.images[0]))


def test_images_are_saved_with_their_infotext(engine, demo_model, tmp_path):
    result = run(engine, demo_model, settings=RunSettings(save_dir=tmp_path), steps=2, batch_size=2)
    assert len(result.paths) == 2
    for path, infotext in zip(result.paths, result.infotexts):
        assert path.parent.parent == tmp_path
        assert Image.open(path).info["parameters"] == infotext


def test_saved_names_follow_the_pattern_and_the_format(engine, demo_model, tmp_path):
    naming = FileNaming(pattern="[seed]-[steps]-[batch_number]-[model_name]", format=SaveFormat("webp"))
    result = run(engine, demo_model, settings=RunSettings(save_dir=tmp_path, naming=naming), steps=2, batch_size=2)
    model = demo_model.checkpoint.model_name
    assert [path.name for path in result.paths] == [f"00000-5-2-1-{model}.webp", f"00001-6-2-2-{model}.webp"]
    assert [read_infotext(Image.open(path)) for path in result.paths] == result.infotexts


def _act_when(engine, predicate, action):
    """Call `action` once the running job's progress matches; returns the steps seen afterwards."""
    seen_after: list[int] = []

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (engine.progress.busy and predicate(engine.progress)):
            time.sleep(0.002)
        seen_after.append(engine.progress.step)
        action()
        while engine.progress.busy and time.monotonic() < deadline:
            seen_after.append(engine.progress.step)
            time.sleep(0.002)

    threading.Thread(target=watch, daemon=True).start()
    return seen_after


def test_interrupt_stops_within_a_step_and_returns_the_image(engine, demo_model):
    seen = _act_when(engine, lambda s: s.step >= 3, engine.interrupt)
    result = run(engine, demo_model, steps=150, n_iter=3)
    assert result.interrupted
    assert len(result.images) == 1  # the batch in progress is decoded; later batches never start
    assert max(seen) - seen[0] <= 2, seen


def test_skip_moves_on_to_the_next_batch(engine, demo_model):
    _act_when(engine, lambda s: s.step >= 2 and s.job_no == 0, engine.skip)
    result = run(engine, demo_model, steps=60, n_iter=2)
    assert not result.interrupted
    assert len(result.images) == 2
    full = run(engine, demo_model, steps=60, seed=6)
    assert np.array_equal(pixels(result.images[1]), pixels(full.images[0]))  # second batch ran to the end


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"width": 100}, "multiple of 8"),
        ({"width": 60000, "height": 60000}, "more than the limit"),
        ({"steps": 0}, "between 1 and 1000"),
        ({"sampler_name": "Nope"}, "Unknown sampler"),
        ({"batch_size": 0}, "at least 1"),
    ],
)
def test_bad_input_is_refused_before_any_work(engine, demo_model, kw, message):
    started = time.monotonic()
    with pytest.raises(UserError, match=message):
        run(engine, demo_model, **kw)
    assert time.monotonic() - started < 2
    assert run(engine, demo_model, steps=1).images  # the engine and model still work


def test_repeating_a_prompt_does_not_run_the_text_encoder_again(engine, demo_model):
    run(engine, demo_model, prompt="a unique [cat:dog:2] prompt AND a tree", negative_prompt="ugly", steps=3)
    calls = demo_model.prompt_encoder.encoder_calls
    run(engine, demo_model, prompt="a unique [cat:dog:2] prompt AND a tree", negative_prompt="ugly", steps=3, seed=99)
    assert demo_model.prompt_encoder.encoder_calls == calls


def _run(engine, model, sampler: str, **settings):
    params = GenerationParams(prompt="a red house", steps=4, width=64, height=64, seed=5, sampler_name=sampler)
    run_settings = RunSettings(sampling=SamplingSettings(**settings))
    result = engine.call("t", lambda ctx: Txt2Img(model, params, ctx, run_settings).run())
    return np.asarray(result.images[0]), result.infotexts[0]


def test_ddim_eta_adds_seeded_noise_and_is_written(engine, demo_model):
    plain, plain_text = _run(engine, demo_model, "DDIM")
    noisy, text = _run(engine, demo_model, "DDIM", eta_ddim=1.0)
    again, _ = _run(engine, demo_model, "DDIM", eta_ddim=1.0)
    shifted, shifted_text = _run(engine, demo_model, "DDIM", eta_ddim=1.0, eta_noise_seed_delta=31337)
    assert "Eta DDIM" not in plain_text and "Eta DDIM: 1," in text
    assert not np.array_equal(plain, noisy) and np.array_equal(noisy, again)
    assert not np.array_equal(noisy, shifted)
    assert "ENSD" not in shifted_text  # as A1111: DDIM's noise moves with ENSD, but it is not written


def test_ensd_is_written_only_for_samplers_that_draw_noise(engine, demo_model):
    _, ancestral = _run(engine, demo_model, "Euler a", eta_noise_seed_delta=31337)
    _, plain = _run(engine, demo_model, "Euler", eta_noise_seed_delta=31337)
    _, without_eta = _run(engine, demo_model, "Euler a", eta_noise_seed_delta=31337, eta_ancestral=0.0)
    assert "ENSD: 31337" in ancestral
    assert "ENSD" not in plain and "ENSD" not in without_eta and "Eta: 0," in without_eta


def test_eta_zero_makes_an_ancestral_sampler_noise_free(engine, demo_model):
    """Euler a with eta 0 is Euler (A1111: the ancestral step adds no noise and steps to σ_next)."""
    quiet, _ = _run(engine, demo_model, "Euler a", eta_ancestral=0.0)
    euler, _ = _run(engine, demo_model, "Euler")
    noisy, _ = _run(engine, demo_model, "Euler a")
    assert np.abs(quiet.astype(int) - euler.astype(int)).max() <= 1
    assert np.abs(noisy.astype(int) - euler.astype(int)).mean() > 1


def test_sigma_churn_reaches_the_samplers_that_read_it_and_is_written(engine, demo_model):
    churn = {"s_churn": 4.0, "s_tmax": 10.0}
    plain, _ = _run(engine, demo_model, "Euler")
    churned, text = _run(engine, demo_model, "Euler", **churn)
    again, _ = _run(engine, demo_model, "Euler", **churn)
    assert not np.array_equal(plain, churned) and np.array_equal(churned, again)
    assert "Sigma churn: 4, Sigma tmax: 10," in text and "Sigma noise" not in text
    heun, heun_text = _run(engine, demo_model, "Heun", **churn)
    assert not np.array_equal(heun, _run(engine, demo_model, "Heun")[0]) and "Sigma churn: 4" in heun_text
    lms, lms_text = _run(engine, demo_model, "LMS", **churn)
    assert np.array_equal(lms, _run(engine, demo_model, "LMS")[0]) and "Sigma" not in lms_text


def test_a_schedule_type_a_sampler_ignores_is_a_note(engine, demo_model):
    params = GenerationParams(
        prompt="a red house", steps=4, width=64, height=64, seed=5, sampler_name="DDIM", scheduler="Karras"
    )
    result = engine.call("t", lambda ctx: Txt2Img(demo_model, params, ctx, RunSettings()).run())
    assert any("Schedule type Karras does not apply to DDIM" in w for w in result.warnings)
    assert "Schedule type: Karras," in result.infotexts[0] and "Schedule type unused: Karras," in result.infotexts[0]
    plain = run(engine, demo_model, sampler_name="DDIM", steps=4)
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(result.images[0])) and not plain.warnings


def test_a_unet_that_gives_nans_stops_the_job_with_a_clear_message(engine, demo_model):
    from modules import script_callbacks

    def poison(params):
        params.x = torch.full_like(params.x, float("nan"))

    script_callbacks.on_cfg_denoiser(poison)
    try:
        with pytest.raises(UserError, match="A tensor with all NaNs was produced in the UNet"):
            run(engine, demo_model, steps=2)
    finally:
        script_callbacks.clear()
    assert np.asarray(run(engine, demo_model, steps=2).images[0]).std() > 5, "the next job runs"
