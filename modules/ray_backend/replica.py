"""The generation deployment's replica: its own engine, model manager, networks and tools, built from the
head's flags over the same (shared) data folder, running GenerationJobs with the same code as the head.

Checkpoints are Serve multiplexed models (id: the short hash); Serve drops the least recently used one
beyond --ray-models-per-replica, and `LoadedCheckpoint.__del__` frees its memory. `generate` streams
progress events (and live previews) while the job runs, then the JobResult."""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import ray
from ray import serve

from modules.core.backend import WorkerInfo, run_generation
from modules.core.engine import Engine, JobContext
from modules.core.services import Services
from modules.errors import ModelLoadError, UserError
from modules.jobs.job_files import check_job_files
from modules.jobs.job_spec import GenerationJob, JobResult, png_bytes
from modules.models.checkpoints import CheckpointInfo, HashCache
from modules.ray_backend.board import BOARD_NAME
from modules.ray_backend.remote_hooks import RemoteHooks
from modules.sd_models import StableDiffusionModel, free_model

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25  # as often as the page asks for progress
ANSWER_WAIT_SECONDS = 1.0  # how long one wait for a hook answer lasts before the job's interrupt is checked
NAMESPACE = "webui"


class LoadedCheckpoint:
    """A checkpoint held by Serve's multiplexing cache; dropping it frees the model on the replica's worker."""

    def __init__(self, model: StableDiffusionModel, replica: GenerationReplica, key: str) -> None:
        self.model: StableDiffusionModel | None = model
        self.replica = replica
        self.key = key

    def __del__(self) -> None:
        model, self.model = self.model, None
        if model is not None:
            self.replica.dropped(self.key, model)


class GenerationReplica:
    """One replica of the generation deployment (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, models_per_replica: int) -> None:
        self.services = Services.create(args)  # as app.py, without page, scripts or a model
        self.name = serve.get_replica_context().replica_id.unique_id
        self.node = f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()[:8]}"
        self.board = ray.get_actor(BOARD_NAME, namespace=NAMESPACE)
        self.loaded: dict[str, StableDiffusionModel] = {}
        self.running: str | None = None
        self.jobs_done = 0

        async def load(model_id: str) -> LoadedCheckpoint:
            return await self._load(model_id)

        self.checkpoint = serve.multiplexed(max_num_models_per_replica=models_per_replica)(load)
        self._report()

    @property
    def engine(self) -> Engine:
        return self.services.engine

    def info(self) -> WorkerInfo:
        models = self.services.models
        return WorkerInfo(
            name=self.name,
            node=self.node,
            device=str(models.device),
            loaded=list(self.loaded),
            loads=models.loads,
            running=self.running,
            jobs_done=self.jobs_done,
            pid=os.getpid(),
        )

    def _report(self) -> None:
        self.board.report.remote(self.info().as_dict())

    def _find(self, key: str) -> CheckpointInfo:
        """The checkpoint file whose short hash (or, for a diffusers folder, name) is `key`, on this node."""
        models = self.services.models
        for info in models.refresh():
            if info.name == key or (info.path.is_file() and HashCache.short(models.hashes.sha256(info.path)) == key):
                return info
        folders = ", ".join(map(str, self.services.paths.checkpoint_dirs()))
        raise ModelLoadError(f"No checkpoint with hash {key} in {folders} on node {self.node}")

    async def _load(self, key: str) -> LoadedCheckpoint:
        info = self._find(key)
        built = self.engine.submit(f"load {info.name}", lambda ctx: self.services.models.build(info))
        model = await asyncio.wrap_future(built)
        self.loaded[key] = model
        self._report()
        return LoadedCheckpoint(model, self, key)

    def dropped(self, key: str, model: StableDiffusionModel) -> None:
        """Serve's LRU let go of `key`: free its model once no job uses it."""
        self.loaded.pop(key, None)
        self.engine.submit(f"free {key}", lambda ctx: free_model(model))
        self._report()

    async def generate(self, job: GenerationJob) -> AsyncIterator[dict[str, Any]]:
        """Run `job`, yielding {"progress": ...} (with "preview" PNG bytes when there is a new one) while it
        runs, {"hook": (call, kind, args)} when a script hook needs the head (see remote_hooks), then
        {"result": JobResult}, or {"error": message, "user": bool}."""
        try:
            held = await self.checkpoint(serve.get_multiplexed_model_id())
        except UserError as exc:
            yield {"error": f"Can't run {job.checkpoint_name}: {exc}", "user": True}
            return
        self.running = job.job_id
        self._report()
        hook_calls: asyncio.Queue = asyncio.Queue()
        ask = self._asker(job.job_id, hook_calls)
        future = self.engine.submit(job.job_id, lambda ctx: self._run(job, held.model, ctx, ask))
        done, shown = asyncio.wrap_future(future), 0
        try:
            while True:
                call = asyncio.ensure_future(hook_calls.get())
                await asyncio.wait({done, call}, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                if call.done():
                    yield {"hook": call.result(), "worker": self.name}
                    continue
                call.cancel()
                if done.done():  # no last progress event (nor a preview built and encoded) for a finished job
                    break
                event, shown = await self._progress_event(job.job_id, shown)
                yield event
            yield {"result": done.result(), "worker": self.name}
        except UserError as exc:
            yield {"error": str(exc), "user": True}
        except Exception as exc:  # the head raises it with the worker's name
            log.exception("Job %s failed on %s", job.job_id, self.name)
            yield {"error": f"{type(exc).__name__}: {exc} (on worker {self.name}, node {self.node})", "user": False}
        finally:
            if not done.done():  # the head went away: stop the job
                self.engine.interrupt()
            self.running = None
            self.jobs_done += 1
            self._report()

    def _asker(self, job_id: str, hook_calls: asyncio.Queue) -> Callable[[JobContext, str, tuple], Any]:
        """For the job's worker thread: send a hook call down the stream and wait for the head's answer (None
        once the job is interrupted)."""
        loop, calls = asyncio.get_running_loop(), itertools.count()

        def ask(ctx: JobContext, kind: str, args: tuple) -> Any:
            call = next(calls)
            loop.call_soon_threadsafe(hook_calls.put_nowait, (call, kind, args))
            while not ctx.interrupted:
                answer = ray.get(self.board.await_answer.remote(job_id, call, ANSWER_WAIT_SECONDS))
                if answer is not None:
                    return answer[0]
            return None

        return ask

    async def _progress_event(self, job_id: str, shown: int) -> tuple[dict[str, Any], int]:
        """Apply the head's stop requests, then the progress (and any new live preview) to send."""
        stops = await self.board.take.remote(job_id)
        if stops["interrupt"]:
            self.engine.interrupt()
        if stops["skip"]:
            self.engine.skip()
        progress = self.engine.progress
        event: dict[str, Any] = {
            "progress": (progress.job_no, progress.job_count, progress.step, progress.steps, progress.textinfo),
            "worker": self.name,
        }
        if progress.preview_id != shown:
            image = await asyncio.get_running_loop().run_in_executor(None, self.engine.preview)
            if image is not None:
                event["preview"] = png_bytes(image)
        return event, progress.preview_id

    def _run(
        self,
        job: GenerationJob,
        model: StableDiffusionModel,
        ctx: JobContext,
        ask: Callable[[JobContext, str, tuple], Any],
    ) -> JobResult:
        """On the replica's worker: the job on `model`, with `Worker` in its infotext (and its script hooks
        asked of the head with `ask`, when it has any)."""
        s = self.services
        check_job_files(job.files, s, f"worker {self.name} (node {self.node})")
        if job.remote_hooks:
            job.hooks = RemoteHooks(functools.partial(ask, ctx))
        s.models.current = model  # the job's model is the one its hires/refiner models are compared with
        s.switching.sync_vae(job.vae, model)  # a VAE that can't be used: the head has warned already
        result, kind = run_generation(
            job, model, ctx, s.networks, s.tools, s.switching.job_models, {"Worker": self.name}
        )
        return JobResult.of(result, self.name, kind)
