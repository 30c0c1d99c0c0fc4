"""Where generation jobs run: the `Backend` interface, the shared job runner, and the in-process backend.

Every job first waits its turn in the head's FIFO engine (the front queue: order, progress, interrupt and
skip, scripts' run()). Inside it, each GenerationJob goes to `Backend.run_job`: the in-process backend runs
it right there on the engine's worker; the Ray backend (modules/ray_backend) sends it to a replica."""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from modules.core.engine import JobContext
from modules.img2img import Img2Img, Img2ImgInputs
from modules.jobs.generation import GenerationResult, Txt2Img
from modules.jobs.job_spec import GenerationJob

if TYPE_CHECKING:
    from modules.core.services import Services
    from modules.imaging.image_tools import ImageTools
    from modules.prompting.networks import Networks
    from modules.sd_models import StableDiffusionModel

JobModels = Callable[[Iterable["str | None"], "str | None"], AbstractContextManager[dict]]


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as GET /sdapi/v1/cluster lists it."""

    name: str
    node: str
    device: str
    loaded: list[str]  # short hashes of the checkpoints it holds
    loads: int  # checkpoints it has built so far
    running: str | None  # the job it runs now
    jobs_done: int
    pid: int  # its process

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_generation(
    job: GenerationJob,
    model: StableDiffusionModel,
    ctx: JobContext,
    networks: Networks | None,
    tools: ImageTools | None,
    job_models: JobModels,
    extra_infotext: dict[str, str] | None = None,
) -> tuple[GenerationResult, str]:
    """Run `job` on `model` (the same code on every worker); returns the result and the job's kind for
    file names and infotext ("txt2img", "hires", "img2img", "inpaint")."""
    if job.kind == "img2img":
        gen: Txt2Img = Img2Img(
            model, job.params, ctx, job.settings, networks, tools, inputs=Img2ImgInputs(job.init_images, job.mask)
        )
    else:
        gen = Txt2Img(model, job.params, ctx, job.settings, networks, tools)
    gen.plan, gen.hooks, gen.use_extra_network_tags = job.plan, job.hooks, job.use_extra_network_tags
    gen.validated = job.validated  # a built job's params were validated once, when it was built
    gen.extra_infotext.update(job.extra_infotext)
    gen.extra_infotext.update(extra_infotext or {})
    gen.batches = range(*job.batches) if job.batches else None
    gen.blend = job.blend
    hires = gen.params.hires_checkpoint if gen.supports_hires else None
    refiner = gen.params.refiner
    with job_models((hires, refiner), job.vae) as models:
        gen.hires_model, gen.refiner_model = models.get(hires), models.get(refiner)
        return gen.run(), gen.job


class Backend(ABC):
    """Runs generation jobs. Front jobs queue on the head's engine, whose progress and previews the page and
    the API read (a remote job's are mirrored there) and whose interrupt and skip a front job passes on;
    `run_job` runs one GenerationJob inside a front job."""

    name = "in-process"  # as GET /sdapi/v1/cluster names it
    runs_jobs_at_once = False  # whether run_jobs runs independent jobs together (process_images_each)

    @abstractmethod
    def run_job(self, job: GenerationJob, ctx: JobContext) -> GenerationResult:
        """Run `job` now, reporting to `ctx`; the images are saved when `job.settings.save_dir` is set."""

    def run_jobs(self, jobs: list[GenerationJob], ctx: JobContext) -> list[GenerationResult]:
        """Run independent jobs, their results in order; here one after another."""
        return [self.run_job(job, ctx) for job in jobs]

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """Every worker with what it holds and does."""

    def close(self) -> None:  # noqa: B027 - optional: a backend that starts nothing keeps this no-op
        """Let go of what the backend started."""


class InProcessBackend(Backend):
    """Today's engine: jobs run on the head's own worker thread with its loaded model."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.jobs_done = 0

    def run_job(self, job: GenerationJob, ctx: JobContext) -> GenerationResult:
        s = self.services
        try:
            return run_generation(job, s.models.require(), ctx, s.networks, s.tools, s.switching.job_models)[0]
        finally:
            self.jobs_done += 1

    def workers(self) -> list[WorkerInfo]:
        models, progress = self.services.models, self.services.engine.progress
        loaded = [models.current.short_hash or models.current.checkpoint.name] if models.current else []
        return [
            WorkerInfo(
                name="local",
                node=socket.gethostname(),
                device=str(models.device),
                loaded=loaded,
                loads=models.loads,
                running=progress.job or None,
                jobs_done=self.jobs_done,
                pid=os.getpid(),
            )
        ]
