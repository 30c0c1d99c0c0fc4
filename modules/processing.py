"""A1111's `modules.processing` for scripts: `StableDiffusionProcessingTxt2Img`/`Img2Img`,
`process_images` and `Processed`.

The processing objects are views over one GenerationParams (A1111's field names are its field
names); anything else a script sets is kept on the object. process_images runs on the one engine:
inside a running job (a script's run()) at once, otherwise as a queued job. The page and the API get the job's
GenerationResult (run_processing); `Processed` is the view of it built for scripts only."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from modules import masking, rng
from modules.core.engine import JobContext
from modules.extensions.a1111.sd_hijack import model_hijack
from modules.jobs import batch_grid
from modules.jobs.generation import GenerationResult, ImagePlan, JobHooks, ModelUsed
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_builder import SubmitCheck, build_job
from modules.jobs.job_spec import GenerationJob
from modules.prompting.conditioning_blend import ConditioningBlend
from modules.styles import StyleDatabase

if TYPE_CHECKING:
    from modules.scripts import ScriptRunner

LISTABLE = frozenset({"prompt", "negative_prompt", "seed", "subseed"})  # A1111 lets scripts set one per image


class StableDiffusionProcessing:
    """What a script reads and changes before calling process_images(p)."""

    outdir_option = "outdir_txt2img_samples"
    is_img2img = False
    outpath_samples: str | None = None
    outpath_grids: str | None = None
    do_not_save_samples = False
    do_not_save_grid = False
    disable_extra_networks = False  # True: the prompts' <lora:…> tags are taken out but not used
    sd_model = None
    scripts: ScriptRunner | None = None
    iteration = 0
    all_prompts: list[str] | None = None
    all_negative_prompts: list[str] | None = None
    all_seeds: list[int] | None = None
    all_subseeds: list[int] | None = None
    conditioning_blend: ConditioningBlend | None = None  # set by the Prompt interpolation script
    submit_check: SubmitCheck | None = None  # the params the submit check passed (job_builder)

    def __init__(self, **kwargs: Any) -> None:
        object.__setattr__(self, "params", GenerationParams())
        self.extra_generation_params: dict[str, Any] = {}
        self.override_settings: dict[str, Any] = {}
        self.script_args: list = []
        for name, value in kwargs.items():
            if value is not None or name not in GenerationParams.field_names():
                setattr(self, name, value)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and name in GenerationParams.field_names():
            return getattr(params, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in GenerationParams.field_names():
            object.__setattr__(self, name, value)
        elif name in LISTABLE and isinstance(value, list):
            self.__dict__[name] = value
        else:
            self.__dict__.pop(name, None)
            setattr(self.params, name, GenerationParams.coerce(name, value))

    def __copy__(self) -> StableDiffusionProcessing:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__["params"] = dataclasses.replace(self.params)
        return clone

    def __deepcopy__(self, memo: dict) -> StableDiffusionProcessing:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update({k: v if k == "scripts" else copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return clone

    @classmethod
    def from_params(cls, params: GenerationParams, **kwargs: Any) -> StableDiffusionProcessing:
        """A processing object over a copy of `params`."""
        p = cls(**kwargs)
        p.__dict__["params"] = dataclasses.replace(params)
        return p

    @property
    def sampler_index(self) -> int:
        from modules.sampling.registry import SAMPLER_NAMES

        return SAMPLER_NAMES.index(self.sampler_name) if self.sampler_name in SAMPLER_NAMES else 0

    def plan(self, styles: StyleDatabase | None = None) -> ImagePlan:
        """Fill all_prompts / all_negative_prompts / all_seeds / all_subseeds (A1111 does this before
        scripts' process()), with the chosen styles applied to every prompt."""
        count = self.batch_size * self.n_iter
        prompts = self.__dict__.get("prompt") or [self.params.prompt] * count
        negatives = self.__dict__.get("negative_prompt") or [self.params.negative_prompt] * count
        if self.styles and styles is not None:
            prompts = [styles.apply_to_prompt(prompt, self.styles) for prompt in prompts]
            negatives = [styles.apply_to_negative_prompt(prompt, self.styles) for prompt in negatives]
        seeds = self.__dict__.get("seed")
        if seeds is None:
            seeds = rng.image_seeds(rng.resolve_seed(self.params.seed), count, self.params.subseed_strength)
        subseeds = self.__dict__.get("subseed") or rng.image_seeds(rng.resolve_seed(self.params.subseed), count)
        self.all_prompts = list(prompts)
        self.all_negative_prompts = list(negatives)
        self.all_seeds = [rng.resolve_seed(int(s)) for s in seeds]
        self.all_subseeds = [rng.resolve_seed(int(s)) for s in subseeds]
        self.params.seed, self.params.subseed = self.all_seeds[0], self.all_subseeds[0]
        return ImagePlan(self.all_prompts, self.all_negative_prompts, self.all_seeds, self.all_subseeds)


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """A txt2img job's settings (hires fix included: enable_hr and the hr_* fields)."""


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """An img2img job's settings plus init_images and an optional mask."""

    outdir_option = "outdir_img2img_samples"
    is_img2img = True

    def __init__(self, init_images: list | None = None, mask: Image.Image | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.init_images = list(init_images or [])
        self.mask = mask


class PostprocessImageArgs:
    """What postprocess_image(p, pp) receives; a script may replace `pp.image`."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image


class PostprocessBatchListArgs:
    """What postprocess_batch_list(p, pp, batch_number=…) receives; `pp.images` may be changed."""

    def __init__(self, images: list[Image.Image]) -> None:
        self.images = images


class Processed:
    """The outcome of process_images, with A1111's attribute names."""

    def __init__(
        self,
        p: StableDiffusionProcessing,
        images_list: list,
        seed: int = -1,
        info: str = "",
        subseed: int | None = None,
        all_prompts: list | None = None,
        all_negative_prompts: list | None = None,
        all_seeds: list | None = None,
        all_subseeds: list | None = None,
        index_of_first_image: int = 0,
        infotexts: list | None = None,
        comments: str = "",
    ) -> None:
        self.images = images_list
        self.prompt = p.prompt
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = p.subseed if subseed is None else subseed
        self.subseed_strength = p.subseed_strength
        self.seed_resize_from_w, self.seed_resize_from_h = p.seed_resize_from_w, p.seed_resize_from_h
        self.info = info
        self.comments = comments
        self.width, self.height = p.width, p.height
        self.sampler_name, self.cfg_scale, self.steps = p.sampler_name, p.cfg_scale, p.steps
        self.batch_size, self.clip_skip = p.batch_size, p.clip_skip
        self.restore_faces, self.denoising_strength = p.restore_faces, p.denoising_strength
        self.extra_generation_params = dict(p.extra_generation_params)
        self.styles = list(p.styles)
        self.index_of_first_image = index_of_first_image
        self.all_prompts = all_prompts or p.all_prompts or [p.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [p.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed] * len(self.all_seeds)
        self.infotexts = infotexts or [info]
        self.warnings: list[str] = []
        self.paths: list[Path] = []
        self.interrupted = False
        self.model: ModelUsed | None = None  # the model of the job's images; None for a script's own result

    @classmethod
    def view(
        cls, p: StableDiffusionProcessing, result: GenerationResult, plan: ImagePlan | None, comments: str = ""
    ) -> Processed:
        """The scripts' view of the result of `p`'s job, whose images were planned by `plan` (None: none ran)."""
        processed = cls(
            p,
            result.images,
            result.seeds[0] if result.seeds else p.params.seed,
            result.infotexts[0] if result.infotexts else "",
            infotexts=result.infotexts,
            all_seeds=list(plan.seeds) if plan else None,
            all_prompts=list(plan.prompts) if plan else None,
            all_subseeds=list(plan.subseeds) if plan else None,
            index_of_first_image=result.index_of_first_image,
            comments=comments,
        )
        processed.warnings, processed.paths, processed.interrupted = result.warnings, result.paths, result.interrupted
        processed.model = result.model
        return processed

    def js(self) -> str:
        """The `info` JSON that A1111's API returns."""
        keys = (
            "prompt",
            "negative_prompt",
            "seed",
            "subseed",
            "all_prompts",
            "all_negative_prompts",
            "all_seeds",
            "all_subseeds",
            "subseed_strength",
            "width",
            "height",
            "sampler_name",
            "cfg_scale",
            "steps",
            "batch_size",
            "restore_faces",
            "seed_resize_from_w",
            "seed_resize_from_h",
            "denoising_strength",
            "extra_generation_params",
            "index_of_first_image",
            "infotexts",
            "styles",
            "clip_skip",
        )
        return json.dumps({key: getattr(self, key) for key in keys}, default=str)

    def to_result(self, params: GenerationParams, model: ModelUsed | None) -> GenerationResult:
        """The project's result type (what the page and the API show); a grid a script added gets its infotext
        too. `model` names the model when this result doesn't (one a script built)."""
        infotexts = list(self.infotexts) + [self.info] * (len(self.images) - len(self.infotexts))
        seeds = list(self.all_seeds)
        seeds = [seeds[0]] * self.index_of_first_image + seeds
        return GenerationResult(
            params=dataclasses.replace(params, seed=self.seed),
            model=self.model or model,
            images=list(self.images),
            infotexts=infotexts[: len(self.images)],
            seeds=seeds[: len(self.images)],
            paths=self.paths if len(self.paths) == len(self.images) else [],
            warnings=self.warnings,
            interrupted=self.interrupted,
            index_of_first_image=self.index_of_first_image,
        )


class _ScriptHooks(JobHooks):
    """Calls the AlwaysVisible scripts' batch and image hooks from inside the job."""

    BATCH_HOOKS = (
        "before_process_batch",
        "process_batch",
        "postprocess_image",
        "postprocess_batch",
        "postprocess_batch_list",
    )

    def __init__(self, p: StableDiffusionProcessing) -> None:
        self.p = p

    @property
    def acts_on_batches(self) -> bool:
        """Whether an AlwaysVisible script of the job has a batch or image hook of its own."""
        return _has_own_hook(self.p.scripts, self.BATCH_HOOKS)

    @property
    def replaces_noise(self) -> bool:
        return getattr(self.p, "start_noise", None) is not None

    def enter_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        p, part = self.p, slice(first, first + count)
        p.iteration = batch_no
        p.prompts, p.negative_prompts, p.seeds = plan.prompts[part], plan.negative_prompts[part], plan.seeds[part]
        p.subseeds = plan.subseeds[part]

    def before_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        p, part = self.p, slice(first, first + count)
        self.enter_batch(batch_no, plan, first, count)
        if p.scripts is not None:
            kw = {"batch_number": batch_no, "prompts": p.prompts, "seeds": p.seeds, "subseeds": p.subseeds}
            p.scripts.before_process_batch(p, **kw)
            p.scripts.process_batch(p, **kw)
        plan.prompts[part], plan.negative_prompts[part] = p.prompts, p.negative_prompts

    def image(self, image: Image.Image, index: int) -> Image.Image:
        if self.p.scripts is None:
            return image
        pp = PostprocessImageArgs(image)
        self.p.scripts.postprocess_image(self.p, pp)
        return pp.image

    def start_noise(self, job, noise: torch.Tensor) -> torch.Tensor:
        override = getattr(self.p, "start_noise", None)  # set by a script's run() for its process_images
        return noise if override is None else override(job, noise)

    def after_batch(self, batch_no: int, batch_images: list[Image.Image]) -> None:
        if self.p.scripts is not None:
            self.p.scripts.postprocess_batch(self.p, batch_images, batch_number=batch_no)
            self.p.scripts.postprocess_batch_list(self.p, PostprocessBatchListArgs(batch_images), batch_number=batch_no)


def fix_seed(p: StableDiffusionProcessing) -> None:
    """Replace a random seed and variation seed (-1) with the ones that will be used, as A1111 scripts expect."""
    if not isinstance(p.seed, list):
        p.seed = rng.resolve_seed(p.seed)
    if not isinstance(p.subseed, list):
        p.subseed = rng.resolve_seed(p.subseed)


def create_binary_mask(image: Image.Image, round: bool = True) -> Image.Image:
    """A1111's: an "L" mask (255 = repaint) of an image: its alpha where it has some (with `round`, hardened:
    255 above 128, else 0), else its luminance."""
    return masking.to_mask(image, image.size, round)


def get_fixed_seed(seed: int | None) -> int:
    return rng.resolve_seed(-1 if seed is None else int(seed))


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Generate the images `p` describes and return them with their infotexts and seeds."""
    from modules import shared

    services = shared.services
    return services.engine.run_in_job("process_images", lambda ctx: _run(p, ctx, services).processed())


def process_images_each(jobs: Iterable[StableDiffusionProcessing]) -> Iterator[Processed]:
    """process_images for independent jobs (X/Y/Z cells, prompt lines), their results in order. A backend that
    runs jobs at once (Ray) gets them all together, each set up as `jobs` yields it; otherwise each job runs
    before the next is taken, so a caller that stops early starts nothing more."""
    from modules import shared

    services = shared.services
    if not services.backend.runs_jobs_at_once:
        for p in jobs:
            yield process_images(p)
        return
    finished = services.engine.run_in_job("process_images", lambda ctx: _run_all(jobs, ctx, services))
    yield from (outcome.processed() for outcome in finished)


def run_processing(p: StableDiffusionProcessing, ctx: JobContext, services) -> GenerationResult:
    """A page or API job without a selected script, on the engine's worker: the scripts' hooks, the job, its batch
    grid. After Interrupt nothing more starts: a script that calls again gets no images at once."""
    return _run(p, ctx, services).shown(ctx.first_model)


@dataclasses.dataclass
class _Prepared:
    """A processing object's job, built on the head with its scripts' hooks run, waiting to run."""

    job: GenerationJob
    plan: ImagePlan
    vae_problem: str | None


class _Finished:
    """A processing object's finished job: its result, and the Processed view of it once scripts need one."""

    def __init__(self, p: StableDiffusionProcessing, result: GenerationResult, plan: ImagePlan | None) -> None:
        self.p, self.result, self.plan = p, result, plan
        self.comments = "\n".join(model_hijack.comments) if plan else ""  # what extensions noted during this job
        self._processed: Processed | None = None

    @classmethod
    def stopped(cls, p: StableDiffusionProcessing) -> _Finished:
        """A job that didn't start: Interrupt came first."""
        return cls(p, GenerationResult(params=p.params, interrupted=True), None)

    def processed(self) -> Processed:
        """The scripts' view (the same one each time, so what scripts change in it stays)."""
        if self._processed is None:
            self._processed = Processed.view(self.p, self.result, self.plan, self.comments)
        return self._processed

    def shown(self, model: ModelUsed | None) -> GenerationResult:
        """What the page and the API show, with what scripts changed in the view if they had one; `model` names
        the model when no image was made."""
        if self._processed is not None:
            return self._processed.to_result(self.p.params, model)
        result, params = self.result, self.p.params
        return dataclasses.replace(
            result,
            params=dataclasses.replace(params, seed=result.seeds[0] if result.seeds else params.seed),
            model=result.model or model,
            paths=result.paths if len(result.paths) == len(result.images) else [],
        )


def _run(p: StableDiffusionProcessing, ctx: JobContext, services) -> _Finished:
    """`p`'s job set up, run by the backend and finished."""
    ready = _prepare(p, ctx, services)
    if ready is None:
        return _Finished.stopped(p)
    return _finish(p, ready, services.backend.run_job(ready.job, ctx), ctx, services)


def _run_all(jobs: Iterable[StableDiffusionProcessing], ctx: JobContext, services) -> list[_Finished]:
    """_run for several jobs: all set up first, run together by the backend, then finished in order."""
    ready = [(p, _prepare(p, ctx, services)) for p in jobs]
    results = iter(services.backend.run_jobs([r.job for _, r in ready if r is not None], ctx))
    return [_finish(p, r, next(results), ctx, services) if r else _Finished.stopped(p) for p, r in ready]


def _prepare(p: StableDiffusionProcessing, ctx: JobContext, services) -> _Prepared | None:
    """The job for `p` (its scripts' before_process and process hooks run); None after Interrupt."""
    if ctx.interrupted:
        return None
    model_hijack.clear_comments()
    if p.scripts is not None:
        p.scripts.before_process(p)
    plan = p.plan(services.styles)
    if p.scripts is not None:
        p.scripts.process(p)
    p.extra_generation_params.update(model_hijack.extra_generation_params)  # what extensions put there
    vae = p.override_settings.get("sd_vae")  # X/Y/Z's VAE axis and the API set it per job
    vae_problem = services.switching.sync_vae(vae)
    settings = services.jobs.run_settings(p.outdir_option)
    if p.do_not_save_samples:
        settings = dataclasses.replace(settings, save_dir=None)
    elif p.outpath_samples and settings.save_dir is not None:
        settings = dataclasses.replace(settings, save_dir=Path(p.outpath_samples))
    job_plan = (
        ImagePlan(p.all_prompts, p.all_negative_prompts, p.all_seeds, p.all_subseeds or []) if p.all_prompts else plan
    )
    job = build_job(p, job_plan, settings, services.models.require(), vae or services.opts.sd_vae, _ScriptHooks(p))
    return _Prepared(job, plan, vae_problem)


def _finish(
    p: StableDiffusionProcessing, ready: _Prepared, result: GenerationResult, ctx: JobContext, services
) -> _Finished:
    """The job's result with the batch grid, and the AlwaysVisible scripts' postprocess on their view of it."""
    ctx.first_model = ctx.first_model or result.model
    if ready.vae_problem:
        result.warnings.insert(0, ready.vae_problem)
    batch_grid.add_grid(p, result, services)
    finished = _Finished(p, result, ready.plan)
    if p.scripts is not None and _has_own_hook(p.scripts, ("postprocess",)):
        p.scripts.postprocess(p, finished.processed())
    return finished


def _has_own_hook(runner: ScriptRunner | None, hooks: Iterable[str]) -> bool:
    """Whether an AlwaysVisible script of `runner` has one of `hooks` of its own."""
    from modules.scripts import Script  # it imports this module

    return runner is not None and any(
        getattr(type(script), hook) is not getattr(Script, hook) for script in runner.alwayson for hook in hooks
    )
