"""A generation job as data, and its result as data: what travels between the front end and a worker.

`GenerationJob` holds everything a worker needs besides the model files: the GenerationParams, the
image plan, the settings snapshot it reads (RunSettings), the checkpoint by short hash, the VAE choice
and, for a worker elsewhere, the other files it reads by their hashes. Pickled (to a Ray replica), its
input images travel as PNG bytes; the script hooks stay on the front end (a worker asks for them).
`JobResult` is what a worker sends back: PNG bytes, infotexts, seeds, warnings, the model and
the worker that ran it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from modules.jobs.generation import GenerationResult, ImagePlan, JobHooks, ModelUsed, RunSettings
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_files import JobFile
from modules.prompting.conditioning_blend import ConditioningBlend


def png_bytes(image: Image.Image) -> bytes:
    """An image as PNG bytes (lossless; the format worker and front end agree on)."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def png_image(data: bytes) -> Image.Image:
    """PNG bytes back as a loaded image."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@dataclass
class GenerationJob:
    """One txt2img or img2img job, ready to run on any worker that can read `checkpoint`'s file."""

    kind: str  # "txt2img" or "img2img"
    params: GenerationParams  # validated when `validated` (build_job): the worker doesn't validate them again
    plan: ImagePlan
    settings: RunSettings
    checkpoint: str  # the checkpoint's short hash (a Ray Serve multiplexed model id)
    checkpoint_name: str  # its file name, for messages
    vae: str | None = None  # the sd_vae choice for this job; None: the setting in force
    extra_infotext: dict[str, str] = field(default_factory=dict)
    use_extra_network_tags: bool = True
    init_images: list[Image.Image] = field(default_factory=list)
    mask: Image.Image | None = None
    blend: ConditioningBlend | None = None  # the conditioning part-way to another prompt's (prompt interpolation)
    batches: tuple[int, int] | None = None  # run only batches [first, last) of the batch count; None: all
    job_id: str = ""
    files: tuple[JobFile, ...] = ()  # the other files it reads, by hash (job_files), for a worker elsewhere
    remote_hooks: bool = False  # whether a worker elsewhere asks the front end to run the hooks
    validated: bool = False  # whether `params` passed validate (sampler resolved) when the job was built
    hooks: JobHooks = field(default_factory=JobHooks)  # front end only; never pickled

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["init_images"] = [png_bytes(image) for image in self.init_images]
        state["mask"] = png_bytes(self.mask) if self.mask is not None else None
        state["settings"] = replace(self.settings, save_dir=None)  # the front end writes the files
        del state["hooks"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["init_images"] = [png_image(data) for data in state["init_images"]]
        state["mask"] = png_image(state["mask"]) if state["mask"] is not None else None
        self.__dict__.update(state, hooks=JobHooks())


@dataclass
class JobResult:
    """A finished job as a worker returns it: images as PNG bytes, with their infotexts and seeds."""

    images: list[bytes]
    infotexts: list[str]
    seeds: list[int]
    prompts: list[str]
    negative_prompts: list[str]
    warnings: list[str]
    interrupted: bool
    params: GenerationParams  # as the job ran them (sampler resolved, seeds fixed)
    model: ModelUsed | None
    worker: str
    job: str  # the kind that names files and picks infotext keys: txt2img, hires, img2img or inpaint

    @classmethod
    def of(cls, result: GenerationResult, worker: str, job: str) -> JobResult:
        return cls(
            [png_bytes(image) for image in result.images],
            list(result.infotexts),
            list(result.seeds),
            list(result.prompts),
            list(result.negative_prompts),
            list(result.warnings),
            result.interrupted,
            result.params,
            result.model,
            worker,
            job,
        )

    @classmethod
    def joined(cls, parts: list[JobResult]) -> JobResult:
        """The parts of a job fanned out by batches, in batch order, as one result."""
        first = parts[0]
        return cls(
            [image for part in parts for image in part.images],
            [text for part in parts for text in part.infotexts],
            [seed for part in parts for seed in part.seeds],
            [prompt for part in parts for prompt in part.prompts],
            [prompt for part in parts for prompt in part.negative_prompts],
            list(dict.fromkeys(warning for part in parts for warning in part.warnings)),
            any(part.interrupted for part in parts),
            first.params,
            first.model,
            ", ".join(dict.fromkeys(part.worker for part in parts)),
            first.job,
        )

    def to_generation_result(self) -> GenerationResult:
        """The front end's result type, images decoded (not saved yet: no paths)."""
        return GenerationResult(
            params=self.params,
            model=self.model,
            images=[png_image(data) for data in self.images],
            infotexts=list(self.infotexts),
            seeds=list(self.seeds),
            prompts=list(self.prompts),
            negative_prompts=list(self.negative_prompts),
            warnings=list(self.warnings),
            interrupted=self.interrupted,
        )
