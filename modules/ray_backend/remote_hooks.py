"""Script hooks across the wire: a job on a replica calls its batch and image hooks back on the head, where the
scripts and their processing object live, so AlwaysVisible scripts act on it as they do in-process.

The replica's `RemoteHooks` hands each call to its `generate` stream (an event {"hook": (n, kind, args)}) and
waits on the Board for the head's answer; the head runs `answer_hook` on the job's own hooks and posts it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from modules.jobs.generation import ImagePlan, JobHooks
from modules.jobs.job_spec import png_bytes, png_image

Ask = Callable[[str, tuple], Any]  # (kind, args) → the head's answer, or None when the job was interrupted


class RemoteHooks(JobHooks):
    """On a replica: hooks that the head runs (see the module docstring)."""

    acts_on_batches = True

    def __init__(self, ask: Ask) -> None:
        self.ask = ask

    def before_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        answer = self.ask("before_batch", (batch_no, first, count))
        if answer is not None:
            part = slice(first, first + count)
            plan.prompts[part], plan.negative_prompts[part] = answer

    def image(self, image: Image.Image, index: int) -> Image.Image:
        answer = self.ask("image", (png_bytes(image), index))
        return image if answer is None else png_image(answer)

    def after_batch(self, batch_no: int, batch_images: list[Image.Image]) -> None:
        self.ask("after_batch", (batch_no, [png_bytes(image) for image in batch_images]))


def answer_hook(hooks: JobHooks, plan: ImagePlan, batch_size: int, kind: str, args: tuple) -> Any:
    """On the head: run the hook a replica asks for on the job's own hooks, with its batch made the current one
    (parts of a job on several replicas call back in any order); what the replica needs back."""
    if kind == "before_batch":
        batch_no, first, count = args
        hooks.before_batch(batch_no, plan, first, count)
        part = slice(first, first + count)
        return plan.prompts[part], plan.negative_prompts[part]
    if kind == "image":
        data, index = args
        batch_no = index // batch_size
        first = batch_no * batch_size
        hooks.enter_batch(batch_no, plan, first, min(batch_size, len(plan.prompts) - first))
        return png_bytes(hooks.image(png_image(data), index))
    if kind == "after_batch":
        batch_no, images = args
        hooks.enter_batch(batch_no, plan, batch_no * batch_size, len(images))
        hooks.after_batch(batch_no, [png_image(data) for data in images])
        return None
    raise ValueError(f"Unknown script hook {kind!r}")
