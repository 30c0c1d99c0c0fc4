"""POST /sdapi/v1/interrogate as A1111's: {"image": base64, "model": "clip"} → {"caption": "..."}. "clip" runs
Interrogate CLIP as an engine job; a missing model is a 404 naming the folders and files; deepdanbooru and unknown
models are 404s that say so."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from modules.api.errors import RequestError
from modules.api.images import decode_image
from modules.api.models import InterrogateRequest
from modules.core.limits import Limits
from modules.core.services import Services
from modules.models.interrogate_models import MissingInterrogateModel

INTERROGATORS = ("clip", "deepdanbooru")


class InterrogateResponse(BaseModel):
    caption: str | None = Field(None, description="What the image shows, as a prompt")


def add_route(router: APIRouter, services: Services) -> None:
    """POST /interrogate on `router`."""

    async def interrogate(request: InterrogateRequest) -> InterrogateResponse:
        """Describe an image: a BLIP caption followed by the CLIP terms that fit it best."""
        if request.model not in INTERROGATORS:
            raise HTTPException(
                404,
                f"Model not found: {request.model!r} (A1111's interrogators are clip and "
                "deepdanbooru; this server has clip)",
            )
        if request.model == "deepdanbooru":
            raise HTTPException(404, 'deepdanbooru interrogation is not supported by this server; use "clip"')
        try:
            image = await run_in_threadpool(decode_image, request.image, "image", Limits.from_options(services.opts))
        except RequestError:
            raise
        except ValueError as exc:  # not base64, empty, not an image
            raise RequestError("image", str(exc)) from None
        try:
            job = await run_in_threadpool(services.jobs.interrogate, image)
        except MissingInterrogateModel as exc:
            raise HTTPException(404, str(exc)) from None
        return InterrogateResponse(caption=await asyncio.wrap_future(job))

    router.add_api_route("/interrogate", interrogate, methods=["POST"], response_model=InterrogateResponse)
