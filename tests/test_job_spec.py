"""The job and its result as data: what crosses to a Ray replica and back."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from modules.jobs.generation import GenerationResult, ImagePlan, JobHooks, ModelUsed, RunSettings
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_spec import GenerationJob, JobResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Hooks(JobHooks):
    p = "a processing object"


def noise_image(seed: int, mode: str = "RGB") -> Image.Image:
    shape = (16, 24, 3) if mode == "RGB" else (16, 24)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8), mode)


def a_job(tmp_path: Path) -> GenerationJob:
    params = GenerationParams(prompt="a boat", seed=4, n_iter=2)
    return GenerationJob(
        "img2img",
        params,
        ImagePlan(["a boat"] * 2, [""] * 2, [4, 5]),
        RunSettings(save_dir=tmp_path),
        "0123456789",
        "boat.safetensors",
        "None",
        init_images=[noise_image(1)],
        mask=noise_image(2, "L"),
        hooks=Hooks(),
    )


def test_a_job_travels_with_png_images_and_without_hooks_or_an_output_folder(tmp_path):
    job = a_job(tmp_path)
    state = job.__getstate__()
    assert state["init_images"][0].startswith(PNG_SIGNATURE) and state["mask"].startswith(PNG_SIGNATURE)
    copy = pickle.loads(pickle.dumps(job))
    assert np.array_equal(np.asarray(copy.init_images[0]), np.asarray(job.init_images[0]))
    assert np.array_equal(np.asarray(copy.mask), np.asarray(job.mask)) and copy.mask.mode == "L"
    assert type(copy.hooks) is JobHooks and copy.settings.save_dir is None  # the front end writes the files
    assert (copy.params, copy.plan, copy.checkpoint, copy.vae) == (job.params, job.plan, "0123456789", "None")
    assert isinstance(job.hooks, Hooks) and job.settings.save_dir == tmp_path  # the original is unchanged


def test_results_of_a_jobs_parts_join_in_batch_order():
    params = GenerationParams(prompt="a boat")
    boat = ModelUsed("boat.safetensors [0123456789]", "boat", "0123456789", "other.vae.pt", "9876543210", True)

    def part(seed: int, worker: str, warning: str) -> JobResult:
        result = GenerationResult(
            params=params,
            model=boat,
            images=[noise_image(seed)],
            infotexts=[f"text {seed}"],
            seeds=[seed],
            prompts=["a boat"],
            negative_prompts=[""],
            warnings=[warning],
        )
        return JobResult.of(result, worker, "txt2img")

    joined = JobResult.joined([part(1, "w1", "same"), part(2, "w2", "same"), part(3, "w1", "other")])
    assert joined.seeds == [1, 2, 3] and joined.infotexts == ["text 1", "text 2", "text 3"]
    assert joined.warnings == ["same", "other"] and joined.worker == "w1, w2"
    result = pickle.loads(pickle.dumps(joined)).to_generation_result()
    images = result.images
    assert result.model == boat  # the model that ran travels with the images
    assert [
        np.array_equal(np.asarray(image), np.asarray(noise_image(seed))) for image, seed in zip(images, (1, 2, 3))
    ] == [True] * 3
