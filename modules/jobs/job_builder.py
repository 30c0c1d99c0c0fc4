"""build_job: a processing object's spec as a GenerationJob, its params validated once.

A page or API job is validated when it is submitted (JobSubmitter.check_job), and the answer is kept on the
processing object (`record_submit_check`). When the job is built, after the scripts' before_process and process
hooks, params still as submitted are taken as validated then; params a script changed since, or a processing
object a script made itself, are a new spec and are validated now. The worker trusts a built job."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from modules.core.limits import Limits
from modules.jobs.generation import ImagePlan, JobHooks, RunSettings, validate
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_spec import GenerationJob

if TYPE_CHECKING:
    from modules.processing import StableDiffusionProcessing
    from modules.sd_models import StableDiffusionModel


@dataclass(frozen=True)
class SubmitCheck:
    """The params a job's submit check passed, and validate's answer for them (sampler and schedule resolved)."""

    submitted: GenerationParams
    valid: GenerationParams

    def answer(self, params: GenerationParams) -> GenerationParams | None:
        """The validated params for `params` when they are still the submitted ones, their seeds aside (planning
        puts the seeds that will be used in place of -1, and validate checks no seed); None when they changed."""
        if replace(params, seed=self.submitted.seed, subseed=self.submitted.subseed) != self.submitted:
            return None
        return replace(self.valid, seed=params.seed, subseed=params.subseed)


def record_submit_check(p: StableDiffusionProcessing, valid: GenerationParams) -> None:
    """Keep on `p` that its params as they are now passed the submit check, which answered `valid`."""
    p.submit_check = SubmitCheck(replace(p.params), valid)


def valid_params(p: StableDiffusionProcessing, limits: Limits) -> GenerationParams:
    """`p`'s params validated: as the submit check answered when they are unchanged, else validated now."""
    check = p.submit_check
    answer = check.answer(p.params) if check is not None else None
    return answer if answer is not None else validate(p.params, limits)


def build_job(
    p: StableDiffusionProcessing,
    plan: ImagePlan,
    settings: RunSettings,
    model: StableDiffusionModel,
    vae: str | None,
    hooks: JobHooks,
) -> GenerationJob:
    """The job `p` describes now (its scripts' hooks run), on `model`, with its params validated once."""
    return GenerationJob(
        "img2img" if p.is_img2img else "txt2img",
        valid_params(p, settings.limits),
        plan,
        settings,
        model.short_hash or "",
        model.checkpoint.name,
        vae,
        extra_infotext={k: str(v) for k, v in p.extra_generation_params.items() if v is not None},
        use_extra_network_tags=not p.disable_extra_networks,
        init_images=list(getattr(p, "init_images", [])),
        mask=getattr(p, "mask", None),
        blend=p.conditioning_blend,
        hooks=hooks,
        validated=True,
    )
