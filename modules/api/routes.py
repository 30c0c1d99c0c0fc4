"""The /sdapi/v1 routes. Generation and extras requests queue jobs on the page's engine (one FIFO queue, one
job at a time) and wait for them without holding a thread; everything else answers at once."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body
from PIL import Image
from starlette.concurrency import run_in_threadpool

from modules import script_callbacks
from modules.api import cluster, interrogate, listings, not_available, server_control
from modules.api.images import decode_image, decode_images, encode_image
from modules.api.jobs import Jobs
from modules.api.models import (
    EmbeddingsResponse,
    ExtensionItem,
    ExtrasApiFields,
    ExtrasBatchImagesRequest,
    ExtrasBatchImagesResponse,
    ExtrasSingleImageRequest,
    ExtrasSingleImageResponse,
    FaceRestorerItem,
    HypernetworkItem,
    ImagesResponse,
    LoraItem,
    MemoryResponse,
    NameItem,
    PNGInfoRequest,
    PNGInfoResponse,
    ProgressResponse,
    PromptStyleItem,
    RealesrganItem,
    SamplerItem,
    SchedulerItem,
    ScriptInfo,
    ScriptsList,
    SDModelItem,
    SDVaeItem,
    StableDiffusionImg2ImgProcessingAPI,
    StableDiffusionTxt2ImgProcessingAPI,
    UpscalerItem,
)
from modules.api.scripts import ScriptControls
from modules.core.limits import Limits
from modules.core.services import Services
from modules.errors import UserError
from modules.extras import ExtrasResult
from modules.images import read_image_texts, read_infotext
from modules.jobs.infotext import parse_infotext

PREFIX = "/sdapi/v1"


class SdApi:
    """The routes over one Services; `router()` gives them to a FastAPI app."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.scripts = ScriptControls()
        self.jobs = Jobs(services, self.scripts)

    def router(self, dependencies: list | None = None) -> APIRouter:
        router = APIRouter(prefix=PREFIX, dependencies=dependencies or [], tags=["sdapi"])
        s = self.services

        def get(path: str, endpoint: Callable, model: Any = None) -> None:
            router.add_api_route(path, endpoint, methods=["GET"], response_model=model)

        def post(path: str, endpoint: Callable, model: Any = None) -> None:
            router.add_api_route(path, endpoint, methods=["POST"], response_model=model)

        post("/txt2img", self.txt2img, ImagesResponse)
        post("/img2img", self.img2img, ImagesResponse)
        post("/extra-single-image", self.extra_single_image, ExtrasSingleImageResponse)
        post("/extra-batch-images", self.extra_batch_images, ExtrasBatchImagesResponse)
        post("/png-info", self.png_info, PNGInfoResponse)
        post("/interrupt", self.interrupt)
        post("/skip", self.skip)
        get("/progress", self.progress, ProgressResponse)
        get("/options", self.get_options, dict[str, Any])
        post("/options", self.set_options)
        get("/cmd-flags", self.cmd_flags, dict[str, Any])
        get("/samplers", listings.sampler_items, list[SamplerItem])
        get("/schedulers", listings.scheduler_items, list[SchedulerItem])
        get("/upscalers", lambda: listings.upscaler_items(s), list[UpscalerItem])
        get("/latent-upscale-modes", listings.latent_mode_items, list[NameItem])
        get("/sd-models", lambda: listings.sd_model_items(s), list[SDModelItem])
        get("/sd-vae", lambda: listings.sd_vae_items(s), list[SDVaeItem])
        get("/hypernetworks", lambda: listings.hypernetwork_items(s), list[HypernetworkItem])
        get("/face-restorers", lambda: listings.face_restorer_items(s), list[FaceRestorerItem])
        get("/realesrgan-models", lambda: listings.realesrgan_items(s), list[RealesrganItem])
        get("/prompt-styles", lambda: listings.style_items(s), list[PromptStyleItem])
        get("/embeddings", lambda: listings.embeddings(s), EmbeddingsResponse)
        get("/loras", lambda: listings.lora_items(s), list[LoraItem])
        get("/scripts", lambda: listings.script_names(s), ScriptsList)
        get("/script-info", self.script_info, list[ScriptInfo])
        get("/extensions", lambda: listings.extension_items(s), list[ExtensionItem])
        get("/memory", listings.memory, MemoryResponse)
        get("/cluster", lambda: cluster.cluster_info(s), cluster.ClusterResponse)
        post("/refresh-checkpoints", self.refresh_checkpoints)
        post("/refresh-vae", self.refresh_vae)
        post("/refresh-embeddings", self.refresh_embeddings)
        post("/refresh-loras", self.refresh_loras)
        post("/unload-checkpoint", self.unload_checkpoint)
        post("/reload-checkpoint", self.reload_checkpoint)
        interrogate.add_route(router, s)
        not_available.add_routes(router, s.paths)  # create/…, train/…
        server_control.add_routes(router, allowed=s.args.api_server_stop)
        return router

    async def txt2img(self, request: StableDiffusionTxt2ImgProcessingAPI) -> ImagesResponse:
        """Generate from text; the job waits its turn in the engine's queue."""
        return await self._generate(request)

    async def img2img(self, request: StableDiffusionImg2ImgProcessingAPI) -> ImagesResponse:
        """Generate from init_images (with a mask: inpaint)."""
        return await self._generate(request)

    async def _generate(self, request: Any) -> ImagesResponse:
        job = await run_in_threadpool(self.jobs.submit, request)
        result = await asyncio.wrap_future(job.future)
        return await run_in_threadpool(self.jobs.response, job, result)

    async def extra_single_image(self, request: ExtrasSingleImageRequest) -> ExtrasSingleImageResponse:
        """Upscale and/or restore faces in one image (not saved, as in A1111's API)."""
        (source,) = await run_in_threadpool(self._extras_sources, request, [("image", request.image)], "image")
        result = await self._extras(request, [source])
        image = (
            encode_image(result.images[0], read_infotext(source), {"extras": result.infotexts[0]})
            if request.show_extras_results and result.images
            else None
        )
        return ExtrasSingleImageResponse(html_info=_html_info(result), image=image)

    async def extra_batch_images(self, request: ExtrasBatchImagesRequest) -> ExtrasBatchImagesResponse:
        """The same for several images; one that can't be processed is skipped with a warning."""
        items = [(item.name or f"imageList[{i}]", item.data) for i, item in enumerate(request.imageList)]
        sources = await run_in_threadpool(self._extras_sources, request, items, "imageList")
        result = await self._extras(request, sources)
        # Each result keeps its source's parameters when none was skipped (then they pair up one to one).
        texts = (
            [read_infotext(source) for source in sources]
            if len(sources) == len(result.images)
            else [None] * len(result.images)
        )
        images = (
            [
                encode_image(image, text, {"extras": extras})
                for image, text, extras in zip(result.images, texts, result.infotexts)
            ]
            if request.show_extras_results
            else []
        )
        return ExtrasBatchImagesResponse(html_info=_html_info(result), images=images)

    def _extras_sources(self, request: ExtrasApiFields, items: list[tuple[str, str]], field: str) -> list[Image.Image]:
        """The decoded (name, base64) sources of an Extras request; before any is decoded, refused beyond
        max_input_images or when a result would be over max_pixels (sizes from the images' headers)."""
        limits, params = self.limits, request.extras_params()

        def check_results(sizes: list[tuple[str, int, int]]) -> None:
            for name, width, height in sizes:
                params.check_result_size(width, height, limits.max_pixels, name)

        return decode_images(items, limits, field, check_sizes=check_results)

    async def _extras(self, request: ExtrasApiFields, sources: list[Image.Image]) -> ExtrasResult:
        def submit():
            with self.services.opts.overridden({"samples_save": False}):
                return self.services.jobs.extras(request.extras_params(), sources)

        return await asyncio.wrap_future(await run_in_threadpool(submit))

    @property
    def limits(self) -> Limits:
        """The request limits the settings hold now."""
        return Limits.from_options(self.services.opts)

    def png_info(self, request: PNGInfoRequest) -> PNGInfoResponse:
        """The image's generation parameters (text and parsed) and its other text chunks."""
        texts = read_image_texts(decode_image(request.image, "image", self.limits))
        info = texts.pop("parameters", "")
        parameters = parse_infotext(info) if info else {}
        if info:
            script_callbacks.infotext_pasted_callback(info, parameters)
        return PNGInfoResponse(info=info, items=texts, parameters=parameters)

    def interrupt(self) -> dict:
        """Stop the running job at its next step; it answers with what it has made."""
        self.services.engine.interrupt()
        return {}

    def skip(self) -> dict:
        """End the running job's current batch and go on with the next."""
        self.services.engine.skip()
        return {}

    def progress(self, skip_current_image: bool = False) -> ProgressResponse:
        """The running job's progress, seen by any caller (page jobs too)."""
        engine = self.services.engine
        progress, context = engine.progress, engine.context
        started = time.time() - (time.monotonic() - progress.started_at) if progress.busy else None
        state = {
            "skipped": bool(context and context.skipped),
            "interrupted": bool(context and context.interrupted),
            "stopping_generation": False,
            "job": progress.job,
            "job_count": progress.job_count,
            "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(started)) if started else "0",
            "job_no": progress.job_no,
            "sampling_step": progress.step,
            "sampling_steps": progress.steps,
            "queued": progress.queued,
        }
        preview = None if skip_current_image or not progress.busy else engine.preview()
        return ProgressResponse(
            progress=progress.fraction,
            eta_relative=progress.eta or 0.0,
            state=state,
            current_image=encode_image(preview) if preview is not None else None,
            textinfo=progress.textinfo or None,
        )

    def get_options(self) -> dict[str, Any]:
        """Every setting, with A1111's keys."""
        return self.services.opts.as_dict()

    def set_options(self, values: dict[str, Any] = Body(...)) -> None:
        """Check every value first (a 422 names the first bad one), then apply them as UserSettings.change
        does: saved in config.json before they are in force. A null sd_model_checkpoint names none, so it changes
        nothing (as in A1111, where only a named checkpoint is looked up): a client may post back what it got."""
        current = self.services.opts.as_dict()
        changed = {key: value for key, value in values.items() if key not in current or current[key] != value}
        if changed.get("sd_model_checkpoint", "") is None:
            del changed["sd_model_checkpoint"]
        self.services.user_settings.change(self.jobs.overrides(changed, field=""))

    def cmd_flags(self) -> dict[str, Any]:
        """The command-line flags (passwords hidden)."""
        flags = dict(vars(self.services.args))
        return {key: "***" if key.endswith("_auth") and value else value for key, value in flags.items()}

    def script_info(self) -> list[ScriptInfo]:
        runners = [self.services.scripts.runners.get(tab) for tab in ("txt2img", "img2img")]
        return [info for runner in runners if runner is not None for info in self.scripts.info(runner)]

    def refresh_checkpoints(self) -> None:
        self.services.models.refresh()

    def refresh_vae(self) -> None:
        self.services.vaes.refresh()

    def refresh_embeddings(self) -> None:
        self.services.networks.embeddings.refresh()

    def refresh_loras(self) -> None:
        """LoRA files are listed afresh on every request; nothing is cached to refresh."""

    def unload_checkpoint(self) -> dict:
        """Free the loaded model (a queued engine job, so it never pulls the model from under a running one)."""
        self.services.engine.call("unload checkpoint", lambda ctx: self.services.models.unload())
        return {}

    def reload_checkpoint(self) -> dict:
        """Load the sd_model_checkpoint setting's model again (after unload-checkpoint)."""
        s = self.services
        name = s.opts.sd_model_checkpoint or (s.models.checkpoints[0].name if s.models.checkpoints else None)
        if not name:
            raise UserError(f"There is no checkpoint in {s.paths.sd_models}")
        s.switching.load_checkpoint(name, listed_only=False).result()  # the setting: a listed one or --ckpt
        return {}


def _html_info(result: ExtrasResult) -> str:
    lines = [*(f"⚠️ {warning}" for warning in result.warnings), *dict.fromkeys(result.infotexts)]
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
