"""txt2img and img2img requests as engine jobs: a request becomes a GenerationParams and a processing object
with its settings, scripts and images, queued on the engine like the page's jobs; the result becomes A1111's
response, `{images, parameters, info}`."""

from __future__ import annotations

import json
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modules.api.errors import RequestError
from modules.api.images import decode_images, encode_image
from modules.api.models import DEFAULT_SAMPLER, GenerationApiFields, ImagesResponse, Img2ImgApiFields, Txt2ImgApiFields
from modules.api.scripts import ScriptControls
from modules.core.limits import Limits
from modules.core.services import Services
from modules.errors import UnlistedJobCheckpoint, UserError
from modules.jobs import hires_fix
from modules.jobs.generation import GenerationResult
from modules.jobs.generation_params import GenerationParams
from modules.jobs.infotext import VERSION, params_from_infotext, parse_infotext
from modules.jobs.job_builder import record_submit_check
from modules.options import Options, settings_from_infotext
from modules.processing import (
    StableDiffusionProcessing,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from modules.sampling import registry

CLIP_SKIP = "CLIP_stop_at_last_layers"


@dataclass
class ApiJob:
    """A queued request: the processing object (read after the job for all_prompts and all_seeds)."""

    request: GenerationApiFields
    p: StableDiffusionProcessing
    future: Future[GenerationResult]
    timestamp: str


class Jobs:
    """Builds, queues and answers the API's generation jobs."""

    def __init__(self, services: Services, scripts: ScriptControls) -> None:
        self.services = services
        self.scripts = scripts

    def submit(self, request: GenerationApiFields) -> ApiJob:
        """Check the request against this server's state and queue it; RequestError or UserError if it can't run."""
        services = self.services
        from_text = infotext_settings(request, services.opts)
        overrides = self.overrides({**from_text, **request.job_settings(), **request.override_settings})
        values = generation_values(request)
        values["clip_skip"] = overrides.get(CLIP_SKIP, values.get("clip_skip", services.opts.CLIP_stop_at_last_layers))
        try:
            params = GenerationParams.from_dict(values)
        except ValueError as exc:
            raise RequestError("body", str(exc)) from None
        with services.opts.overridden(overrides):  # settings read while queueing (limits, output folders)
            try:
                valid = services.jobs.check_job(params)
            except UnlistedJobCheckpoint as exc:
                raise RequestError(exc.field, str(exc)) from None
            services.styles.apply_to_prompt("", params.styles)  # names an unknown style now, not after queueing
            if params.enable_hr:
                hires_fix.check_upscaler(params.hr_upscaler, services.tools.upscalers)
            p = self.processing(request, params, overrides)
            record_submit_check(p, valid)
            tab = "img2img" if p.is_img2img else "txt2img"
            p.script_args = self.scripts.args_for(
                services.scripts.runners.get(tab), request.script_name, request.script_args, request.alwayson_scripts
            )
            future = services.jobs.queue_checked(p)
        return ApiJob(request, p, future, datetime.now().strftime("%Y%m%d%H%M%S"))

    def overrides(self, settings: dict[str, Any], field: str = "override_settings") -> dict[str, Any]:
        """Settings (override_settings, or a POST to options) checked against the declared settings and
        the checkpoints there are (override_settings may lower a limit, never raise it); a RequestError names
        the first bad one under `field`."""
        opts = self.services.opts
        check = opts.validated_override if field == "override_settings" else opts.validated
        checked = {}
        for key, value in settings.items():
            try:
                if key == "sd_model_checkpoint":
                    checked[key] = self.listed_checkpoint(str(value))
                else:
                    checked[key] = check(key, value)
                    self.services.user_settings.check({key: checked[key]})
            except (KeyError, ValueError, UserError) as exc:
                message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
                raise RequestError(f"{field}.{key}" if field else key, message) from None
        return checked

    def listed_checkpoint(self, name: str) -> str:
        """The title of checkpoint `name`, which must be one of the listed ones (never any path on the server)."""
        models = self.services.models
        return models.title(models.find_listed(name))

    def processing(
        self, request: GenerationApiFields, params: GenerationParams, overrides: dict[str, Any]
    ) -> StableDiffusionProcessing:
        """The processing object scripts see, with the API's saving rules and per-job settings."""
        if isinstance(request, Img2ImgApiFields):
            limits = Limits.from_options(self.services.opts)
            images = decode_images(
                [(f"init_images[{i}]", text) for i, text in enumerate(request.init_images)],
                limits,
                "init_images",
                extra=[("mask", request.mask)] if request.mask else [],
            )
            mask = images.pop() if request.mask else None
            p = StableDiffusionProcessingImg2Img.from_params(params, init_images=images, mask=mask)
        else:
            p = StableDiffusionProcessingTxt2Img.from_params(params)
        # As in A1111's API, images are saved only when the request asks for it.
        p.do_not_save_samples = request.do_not_save_samples or not request.save_images
        p.do_not_save_grid = request.do_not_save_grid or not request.save_images
        p.override_settings = overrides
        p.disable_extra_networks = bool(request.disable_extra_networks)
        p.override_settings_restore_afterwards = request.override_settings_restore_afterwards
        return p

    def response(self, job: ApiJob, result: GenerationResult) -> ImagesResponse:
        """A1111's response: base64 PNGs with their infotext, the request, and the info JSON."""
        request = job.request
        images = (
            [encode_image(image, text) for image, text in zip(result.images, result.infotexts)]
            if request.send_images
            else []
        )
        parameters = request.model_dump()
        if isinstance(request, Img2ImgApiFields) and not request.include_init_images:
            parameters.update(init_images=None, mask=None)
        return ImagesResponse(images=images, parameters=parameters, info=json.dumps(self.info(job, result)))

    def info(self, job: ApiJob, result: GenerationResult) -> dict[str, Any]:
        """The keys of A1111's `info`, from the result (the model that ran included) and the processing object."""
        p, params, request, model = job.p, result.params, job.request, result.model
        seeds = list(p.all_seeds or result.seeds)
        return {
            "prompt": params.prompt,
            "all_prompts": list(p.all_prompts or []),
            "negative_prompt": params.negative_prompt,
            "all_negative_prompts": list(p.all_negative_prompts or []),
            "seed": params.seed,
            "all_seeds": seeds,
            "subseed": params.subseed,
            "all_subseeds": list(p.all_subseeds or [params.subseed] * len(seeds)),
            "subseed_strength": params.subseed_strength,
            "width": params.width,
            "height": params.height,
            "sampler_name": registry.resolve(params.sampler_name, params.scheduler)[0],
            "cfg_scale": params.cfg_scale,
            "steps": params.steps,
            "batch_size": params.batch_size,
            "restore_faces": params.restore_faces,
            "face_restoration_model": self.services.opts.face_restoration_model if params.restore_faces else None,
            "sd_model_name": model and model.name,
            "sd_model_hash": model and model.hash,
            "sd_vae_name": model and model.vae_name,
            "sd_vae_hash": model and model.vae_hash,
            "seed_resize_from_w": params.seed_resize_from_w,
            "seed_resize_from_h": params.seed_resize_from_h,
            "denoising_strength": params.denoising_strength if p.is_img2img or params.enable_hr else None,
            "extra_generation_params": dict(p.extra_generation_params),
            "index_of_first_image": max(0, len(result.images) - len(seeds)),  # a script's grid comes first
            "infotexts": list(result.infotexts),
            "styles": list(params.styles),
            "job_timestamp": job.timestamp,
            "clip_skip": params.clip_skip,
            "is_using_inpainting_conditioning": bool(model and model.inpainting),
            "version": VERSION,
            "comments": "\n".join(str(c) for c in (request.comments or {}).values()),
            "warnings": list(result.warnings),
            "interrupted": result.interrupted,
        }


def generation_values(request: GenerationApiFields) -> dict[str, Any]:
    """GenerationParams values of a request: its generation fields, then the infotext's values for fields the
    request leaves out, with A1111's older spellings (sampler_index, firstphase_*, mask_blur_x/y) mapped."""
    given = request.model_fields_set
    fields = GenerationParams.field_names()
    values = {name: getattr(request, name) for name in type(request).model_fields if name in fields}
    from_text = params_from_infotext(request.infotext)[0] if request.infotext else {}
    values.update(
        {
            name: value
            for name, value in from_text.items()
            if name not in given and (name in values or name == "clip_skip")
        }
    )
    chosen = getattr(request, "sampler_name", None) if "sampler_name" in given else None
    values["sampler_name"] = chosen or request.sampler_index or from_text.get("sampler_name") or DEFAULT_SAMPLER
    if isinstance(request, Txt2ImgApiFields):
        _first_phase(request, values)
    if isinstance(request, Img2ImgApiFields) and "mask_blur" not in given:  # else mask_blur is both, as in A1111
        values["mask_blur"] = request.mask_blur_x
        values["vertical_mask_blur"] = -1 if request.mask_blur_y == request.mask_blur_x else request.mask_blur_y
    return values


def infotext_settings(request: GenerationApiFields, opts: Options) -> dict[str, Any]:
    """The settings the request's `infotext` names with values other than those in force (A1111's
    get_override_settings; no "RNG" means GPU): they go into override_settings below the request's own
    settings fields and override_settings. A value that doesn't fit its setting is left out and logged."""
    return settings_from_infotext(opts, parse_infotext(request.infotext))[0] if request.infotext else {}


def _first_phase(request: Txt2ImgApiFields, values: dict[str, Any]) -> None:
    """A1111's older hires fix request: firstphase_* is the first pass, width x height the final size."""
    width, height = request.firstphase_width, request.firstphase_height
    if not width and not height:
        return
    if not (width and height and values.get("enable_hr")):
        raise RequestError("firstphase_width", "firstphase_width and firstphase_height go together, with enable_hr")
    values.update(hr_resize_x=values["width"], hr_resize_y=values["height"], width=width, height=height)
