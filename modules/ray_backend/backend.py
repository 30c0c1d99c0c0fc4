"""The head's side of Ray Serve: start (or join) Ray, deploy the generation replicas, send each GenerationJob
to a replica holding its checkpoint, mirror the streamed progress, and write the returned images."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ray
from ray import serve

from modules.core.backend import Backend, InProcessBackend, WorkerInfo
from modules.core.engine import JobContext
from modules.errors import DiskFull, UserError
from modules.jobs.generation import GenerationResult, save_output
from modules.jobs.job_files import job_files
from modules.jobs.job_spec import GenerationJob, JobResult, png_image
from modules.paths import REPO_ROOT
from modules.ray_backend.board import BOARD_NAME, Board
from modules.ray_backend.remote_hooks import answer_hook
from modules.ray_backend.replica import NAMESPACE, GenerationReplica

if TYPE_CHECKING:
    from modules.core.services import Services

log = logging.getLogger(__name__)
APP_NAME = "webui"
UPSCALE_DELAY_S = 5  # a job waiting this long for a replica starts another one (Serve's default: 30)


# A runtime this process starts on its own machine shares that machine's cores with the jobs, so its control plane's
# timers, which wake every Ray process many times a second, are slowed down (Ray's idle CPU: 8.9 % of a core before,
# 5.3 % after, measured with all of Ray's processes' CPU times over 10 s). A variable already set is kept.
QUIET_LOCAL_RUNTIME = {
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "1",  # Serve's controller (default: 10 rounds a second)
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "0",  # replicas record request metrics as they come, not on a timer
    "RAY_enable_metrics_collection": "0",  # no dashboard runs to read them
    "RAY_raylet_report_resources_period_milliseconds": "1000",  # (default 100)
    "RAY_raylet_check_gc_period_milliseconds": "1000",  # (default 100)
}


def init_ray(address: str, **options: Any) -> None:
    """Start a Ray runtime on this machine (`local`) or join a cluster (`auto`, `host:port`), without dashboard
    and without the workers' logs on this process's output."""
    if address == "local":
        for name, value in QUIET_LOCAL_RUNTIME.items():
            os.environ.setdefault(name, value)
    ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, **options)


class WorkerFailed(UserError):
    """A replica stopped (its process died) while it ran a job."""


def replica_options(num_cpus: int) -> dict[str, Any]:
    """Each replica takes one GPU where the cluster has any, else `num_cpus` cores; it imports this repo."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    options: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": num_cpus}
    options["runtime_env"] = {"env_vars": {"PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}}
    return options


def scaling(replicas: tuple[int, int] | None) -> dict[str, Any]:
    """A fixed count, or an autoscaling range; by default one replica per GPU in the cluster, or 1."""
    low, high = replicas or (max(1, int(ray.cluster_resources().get("GPU", 0))),) * 2
    if low == high:
        return {"num_replicas": low}
    return {
        "autoscaling_config": {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": 1,
            "upscale_delay_s": UPSCALE_DELAY_S,
        }
    }


class FanOutProgress:
    """The progress of a job's parts on several replicas as one: finished parts, then the latest step."""

    def __init__(self, ctx: JobContext, parts: int) -> None:
        self.ctx, self.parts, self.done = ctx, parts, 0
        self.lock = threading.Lock()

    def __call__(self, progress: tuple) -> None:
        _, _, step, steps, textinfo = progress
        with self.lock:
            self.ctx.show(min(self.done, self.parts - 1), self.parts, step, steps, textinfo)

    def finished(self) -> None:
        with self.lock:
            self.done += 1


class RayBackend(Backend):
    """Jobs run on Ray Serve replicas; front jobs (order, scripts, progress) stay on the head's engine."""

    name = "ray"
    runs_jobs_at_once = True

    def __init__(
        self,
        services: Services,
        address: str,
        replicas: tuple[int, int] | None = None,
        models_per_replica: int = 1,
        num_cpus: int = 1,
    ) -> None:
        self.local = InProcessBackend(services)  # for the jobs that must run beside the head's model
        self.hook_lock = threading.Lock()
        self.started_ray = not ray.is_initialized()
        self.own_runtime = self.started_ray and address == "local"  # else Serve may hold others' apps too
        if self.started_ray:
            init_ray(address)
        self.board = (
            ray.remote(Board).options(name=BOARD_NAME, namespace=NAMESPACE, get_if_exists=True, num_cpus=0).remote()
        )
        serve.start(proxy_location="Disabled")
        deployment = serve.deployment(
            GenerationReplica,
            name="generation",
            max_ongoing_requests=1,
            ray_actor_options=replica_options(num_cpus),
            **scaling(replicas),
        )
        self.max_replicas = max(replicas) if replicas else scaling(None)["num_replicas"]
        self.handle = serve.run(deployment.bind(services.args, models_per_replica), name=APP_NAME, route_prefix=None)

    def run_job(self, job: GenerationJob, ctx: JobContext) -> GenerationResult:
        """Send `job` to a replica holding its checkpoint; with several replicas, a batch count above 1 is
        spread over them as one part per batch (the same seeds, the images in batch order); scripts' batch and
        image hooks run on the head, one call at a time. A script that puts its own starting noise in (it needs
        the model at hand) has the job run on the head."""
        if job.hooks.replaces_noise:
            log.info("%s: a script supplies the starting noise; the job runs on the head", job.checkpoint_name)
            return self.local.run_job(job, ctx)
        job = replace(job, files=job_files(job, self.local.services), remote_hooks=job.hooks.acts_on_batches)
        count = job.params.n_iter
        if count > 1 and self.max_replicas > 1:
            shown = FanOutProgress(ctx, count)

            def run_part(part: GenerationJob) -> JobResult | None:
                outcome = self._run_part(part, ctx, shown)
                if outcome is not None:
                    shown.finished()
                return outcome

            parts = [replace(job, batches=(batch, batch + 1)) for batch in range(count)]
            with ThreadPoolExecutor(min(count, self.max_replicas), thread_name_prefix="fan-out") as pool:
                done = list(pool.map(run_part, parts))
            outcome = JobResult.joined([part for part in done if part is not None] or done[:1])
        else:
            outcome = self._run_part(job, ctx, lambda progress: ctx.show(*progress))
        result = outcome.to_generation_result()
        if job.settings.save_dir is not None:
            self._save(job, outcome, result)
        return result

    def run_jobs(self, jobs: list[GenerationJob], ctx: JobContext) -> list[GenerationResult]:
        """Independent jobs (X/Y/Z cells, prompt lines) at once, one per replica; after an interrupt, the jobs
        not started yet give no images."""

        def run(job: GenerationJob) -> GenerationResult:
            if ctx.interrupted:
                return GenerationResult(params=job.params, interrupted=True)
            return self.run_job(job, ctx)

        if len(jobs) < 2 or self.max_replicas < 2:
            return [run(job) for job in jobs]
        with ThreadPoolExecutor(min(len(jobs), self.max_replicas), thread_name_prefix="jobs") as pool:
            return list(pool.map(run, jobs))

    def _run_part(self, job: GenerationJob, ctx: JobContext, show: Callable[[tuple], None]) -> JobResult | None:
        """One job (or part) on a replica; a replica that dies is retried once on another. After an
        interrupt, a part that has not started yet is left out (None)."""
        if ctx.interrupted and job.batches and job.batches[0] > 0:
            return None
        try:
            return self._stream(job, ctx, show)
        except WorkerFailed as exc:
            if ctx.interrupted:
                raise
            log.warning("%s; running the job again on another replica", exc)
        return self._stream(job, ctx, show)

    def _stream(self, job: GenerationJob, ctx: JobContext, show: Callable[[tuple], None]) -> JobResult:
        """Run `job` on a replica, mirroring its progress and previews and passing on interrupt and skip."""
        job = replace(job, job_id=uuid.uuid4().hex)
        job_id = job.job_id
        handle = self.handle.options(multiplexed_model_id=job.checkpoint or job.checkpoint_name, stream=True)
        worker, interrupt_sent = "a replica", False
        try:
            for event in handle.generate.remote(job):
                worker = event.get("worker", worker)
                if ctx.interrupted and not interrupt_sent:
                    interrupt_sent = True
                    self.board.request.remote(job_id, interrupt=True)
                if ctx.skipped:
                    ctx.skipped = False
                    self.board.request.remote(job_id, skip=True)
                if "error" in event:
                    raise (UserError if event["user"] else RuntimeError)(event["error"])
                if "result" in event:
                    return event["result"]
                if "hook" in event:
                    call, kind, args = event["hook"]
                    with self.hook_lock:  # scripts are called one at a time, as in-process
                        answer = answer_hook(job.hooks, job.plan, job.params.batch_size, kind, args)
                    self.board.answer.remote(job_id, call, answer)
                    continue
                show(event["progress"])
                if "preview" in event:
                    ctx.set_preview(lambda data=event["preview"]: png_image(data))
        except ray.exceptions.RayActorError as exc:
            raise WorkerFailed(f"Worker {worker} stopped while running the job ({type(exc).__name__})") from None
        finally:
            self.board.forget.remote(job_id)
        raise WorkerFailed(f"Worker {worker} ended the job without a result")

    @staticmethod
    def _save(job: GenerationJob, outcome: JobResult, result: GenerationResult) -> None:
        """Write the images on the head (the one writer), named and tagged as the worker would have."""
        plan, model = job.plan, outcome.model
        if model is None:  # nothing ran
            return
        for index, (image, infotext) in enumerate(zip(result.images, result.infotexts)):
            subseed = plan.subseeds[index] if index < len(plan.subseeds) else outcome.params.subseed
            params = replace(
                outcome.params,
                seed=result.seeds[index],
                prompt=result.prompts[index],
                negative_prompt=result.negative_prompts[index],
                subseed=subseed,
            )
            try:
                result.paths.append(
                    save_output(
                        job.settings,
                        job.hooks.p,
                        image,
                        params,
                        index,
                        outcome.job,
                        model.name,
                        model.hash,
                        outcome.params.prompt,
                        infotext,
                    )
                )
            except DiskFull as exc:
                log.error("%s", exc)
                if str(exc) not in result.warnings:
                    result.warnings.append(str(exc))

    def workers(self) -> list[WorkerInfo]:
        """The replicas' last reports; a replica that is gone (Serve replaces one that died) is left out."""
        alive = []
        for worker in ray.get(self.board.workers.remote(), timeout=30):
            try:
                ray.get_actor(f"SERVE_REPLICA::{APP_NAME}#generation#{worker['name']}", namespace="serve")
            except ValueError:
                self.board.drop.remote(worker["name"])
                continue
            alive.append(WorkerInfo(**worker))
        return alive

    def close(self) -> None:
        """Delete the Serve app; stop Serve and Ray only where this process started the runtime."""
        serve.delete(APP_NAME)
        if self.own_runtime:
            serve.shutdown()
        if self.started_ray:
            ray.shutdown()
