"""One job from submit to result: its params validated once (at submit, or when scripts changed them), the worker
trusting a built job, and Processed built only for scripts, whose postprocess changes still reach the result."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from script_services import SMALL, script_args, services_with_scripts

from modules import processing
from modules.core.limits import Limits
from modules.errors import UserError
from modules.jobs.generation import RunSettings, Txt2Img, validate
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_builder import record_submit_check, valid_params

TIGHT = Limits(max_pixels=63 * 64)  # refuses any 64x64 job
STAMP_SCRIPT = """
import modules.scripts as scripts
import gradio as gr
from PIL import ImageOps


class Stamp(scripts.Script):
    def title(self):
        return "Stamp"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(False, label="Stamp the result")]

    def postprocess(self, p, processed, enabled):
        if enabled:
            processed.images[-1] = ImageOps.invert(processed.images[-1])
            processed.infotexts[-1] += ", Stamped: yes"
"""


def submitted(**kw) -> processing.StableDiffusionProcessingTxt2Img:
    """A processing object whose params passed a submit check against the default limits."""
    p = processing.StableDiffusionProcessingTxt2Img.from_params(GenerationParams(**{**SMALL, **kw}))
    record_submit_check(p, validate(p.params, Limits()))
    return p


def test_params_as_submitted_are_not_validated_again():
    p = submitted(sampler_name="k_euler_a", seed=-1)
    p.params.seed = 1234  # planning resolves the seed: no change to the spec
    valid = valid_params(p, TIGHT)  # TIGHT would refuse them: the submit check's answer is taken
    assert (valid.sampler_name, valid.seed, p.params.sampler_name) == ("Euler a", 1234, "k_euler_a")


def test_params_a_script_changed_are_validated_when_the_job_is_built():
    p = submitted()
    p.steps = 5
    with pytest.raises(UserError, match="more than the limit"):
        valid_params(p, TIGHT)
    p.sampler_name = "k_dpmpp_2m"
    assert valid_params(p, Limits()).sampler_name == "DPM++ 2M"
    own = processing.StableDiffusionProcessingTxt2Img(**SMALL)  # a script's own, never submitted
    with pytest.raises(UserError, match="more than the limit"):
        valid_params(own, TIGHT)


def test_hires_fix_is_validated_with_the_first_pass():
    params = GenerationParams(**{**SMALL, "enable_hr": True, "hr_scale": 2.0, "denoising_strength": 0.5})
    with pytest.raises(UserError, match="128x128 is 16,384 pixels"):
        validate(params, Limits(max_pixels=64 * 64))
    with pytest.raises(UserError, match="Denoising strength"):
        validate(replace(params, denoising_strength=1.5), Limits())
    with pytest.raises(UserError, match="no_such_sampler"):
        validate(replace(params, hr_sampler_name="no_such_sampler"), Limits())


def test_the_worker_trusts_a_built_job(engine, demo_model):
    def run(ctx, validated: bool):
        job = Txt2Img(demo_model, GenerationParams(**SMALL), ctx, RunSettings(limits=TIGHT))
        job.validated = validated
        return job.run()

    with pytest.raises(UserError, match="more than the limit"):
        engine.call("t", lambda ctx: run(ctx, False))
    assert len(engine.call("t", lambda ctx: run(ctx, True)).images) == 1


@pytest.fixture(scope="module")
def services(tmp_path_factory, demo_checkpoint):
    data = tmp_path_factory.mktemp("data")
    folder = data / "my-scripts"
    folder.mkdir()
    (folder / "stamp.py").write_text(STAMP_SCRIPT)
    made = services_with_scripts(data, demo_checkpoint, [folder])
    yield made
    made.engine.shutdown()


def run_page_job(services, runner: bool, stamp: bool = False):
    """run_processing of a 2-image job as the page runs it, with the tab's scripts or none."""
    p = processing.StableDiffusionProcessingTxt2Img.from_params(
        GenerationParams(**{**SMALL, "batch_size": 2, "subseed": 5})
    )
    p.scripts = services.scripts.runners["txt2img"] if runner else None
    p.script_args = script_args(services, None, {"Stamp the result": stamp})
    return services.engine.call("t", lambda ctx: processing.run_processing(p, ctx, services))


def test_processed_is_built_only_for_scripts_and_their_postprocess_reaches_the_result(services, monkeypatch):
    views = []
    make_view = processing.Processed.view
    monkeypatch.setattr(processing.Processed, "view", lambda *a: views.append(make_view(*a)) or views[-1])
    plain = run_page_job(services, runner=False)
    assert views == [] and plain.index_of_first_image == 1 and len(plain.images) == 3  # the grid first
    unchanged = run_page_job(services, runner=True)
    assert len(views) == 1  # the AlwaysVisible script's postprocess got its view
    for a, b in zip(plain.images, unchanged.images, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert (plain.infotexts, plain.seeds, plain.params) == (unchanged.infotexts, unchanged.seeds, unchanged.params)
    stamped = run_page_job(services, runner=True, stamp=True)
    assert np.array_equal(np.asarray(stamped.images[-1]), 255 - np.asarray(plain.images[-1]))
    assert stamped.infotexts[-1] == plain.infotexts[-1] + ", Stamped: yes"
