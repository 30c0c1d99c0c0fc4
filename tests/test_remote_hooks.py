"""Script hooks across the wire: a job whose batch and image hooks are asked of the front end (pickled both
ways, as over Ray) gives what the same hooks give in-process; the Board carries the answers."""

from __future__ import annotations

import asyncio
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

from modules.jobs.generation import ImagePlan, JobHooks, RunSettings, Txt2Img
from modules.jobs.generation_params import GenerationParams
from modules.jobs.job_spec import png_bytes
from modules.ray_backend.board import Board
from modules.ray_backend.remote_hooks import RemoteHooks, answer_hook


class PromptAndImageScript(JobHooks):
    """Stands for an AlwaysVisible script: it changes each batch's prompts and inverts each image."""

    acts_on_batches = True

    def __init__(self) -> None:
        self.batches_seen: list[tuple[int, int]] = []

    def before_batch(self, batch_no: int, plan: ImagePlan, first: int, count: int) -> None:
        for index in range(first, first + count):
            plan.prompts[index] += f", batch {batch_no}"

    def image(self, image: Image.Image, index: int) -> Image.Image:
        return ImageOps.invert(image)

    def after_batch(self, batch_no: int, batch_images: list[Image.Image]) -> None:
        self.batches_seen.append((batch_no, len(batch_images)))


def generate(engine, model, hooks: JobHooks, plan: ImagePlan, params: GenerationParams):
    def run(ctx):
        job = Txt2Img(model, params, ctx, RunSettings())
        job.plan, job.hooks = plan, hooks
        return job.run()

    return engine.call("txt2img", run, timeout=300)


def test_hooks_asked_of_the_front_end_act_as_they_do_in_process(engine, demo_model):
    params = GenerationParams(
        prompt="a boat", steps=2, width=64, height=64, seed=3, batch_size=2, n_iter=2, sampler_name="Euler"
    )
    local_script, remote_script = PromptAndImageScript(), PromptAndImageScript()
    local = generate(engine, demo_model, local_script, ImagePlan.repeated(params, 4), params)

    front_plan, worker_plan = ImagePlan.repeated(params, 4), ImagePlan.repeated(params, 4)

    def ask(kind: str, args: tuple):  # over the wire: pickled there and back
        answer = answer_hook(remote_script, front_plan, params.batch_size, kind, pickle.loads(pickle.dumps(args)))
        return pickle.loads(pickle.dumps(answer))

    remote = generate(engine, demo_model, RemoteHooks(ask), worker_plan, params)
    assert remote.prompts == local.prompts == ["a boat, batch 0"] * 2 + ["a boat, batch 1"] * 2
    assert worker_plan.prompts == front_plan.prompts == local.prompts
    assert remote_script.batches_seen == local_script.batches_seen == [(0, 2), (1, 2)]
    assert [np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(remote.images, local.images)] == [True] * 4
    assert "a boat, batch 1" in remote.infotexts[3]


def test_an_interrupted_job_stops_waiting_for_answers():
    plan = ImagePlan(["a"], [""], [1])
    hooks = RemoteHooks(lambda kind, args: None)  # what a replica's ask gives once the job is interrupted
    hooks.before_batch(0, plan, 0, 1)
    image = Image.new("RGB", (8, 8), "red")
    assert plan.prompts == ["a"] and hooks.image(image, 0) is image


def test_the_board_hands_each_answer_to_the_call_that_waits_for_it():
    async def scenario():
        board = Board()
        assert await board.await_answer("job", 0, 0.01) is None  # no answer yet: the replica checks its job
        waiting = asyncio.ensure_future(board.await_answer("job", 1, 5))
        await board.answer("job", 1, None)
        await board.answer("job", 2, b"png")
        assert await waiting == (None,)
        assert await board.await_answer("job", 2, 5) == (b"png",)
        await board.answer("job", 3, "late")
        await board.forget("job")
        assert await board.await_answer("job", 3, 0.01) is None

    with ThreadPoolExecutor(1) as off_loop:  # an earlier test may have left an asyncio loop on this thread
        off_loop.submit(asyncio.run, scenario()).result()


def test_an_image_hook_called_back_out_of_order_sees_its_own_batch():
    class Recorder(JobHooks):
        def __init__(self) -> None:
            self.batch, self.seen = None, []

        def enter_batch(self, batch_no, plan, first, count):
            self.batch = (batch_no, plan.seeds[first : first + count])

        def image(self, image, index):
            self.seen.append((index, self.batch))
            return image

    hooks, plan = Recorder(), ImagePlan(["a"] * 4, [""] * 4, [10, 11, 12, 13])
    image = png_bytes(Image.new("RGB", (8, 8)))
    for index in (3, 0):  # the second batch's part answers first
        answer_hook(hooks, plan, 2, "image", (image, index))
    assert hooks.seen == [(3, (1, [12, 13])), (0, (0, [10, 11]))]
