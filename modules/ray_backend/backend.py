"""The head's side of Ray Serve: start (or join) Ray, deploy the generation replicas, send each GenerationJob
to a replica holding its checkpoint, mirror the streamed progress, and write the returned images."""
from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ray
from ray import serve

from modules.backend import Backend, WorkerInfo
from modules.engine import JobContext
from modules.errors import DiskFull, UserError
from modules.generation import GenerationResult, save_output
from modules.job_spec import GenerationJob, JobResult, png_image
from modules.paths import REPO_ROOT
from modules.ray_backend.board import BOARD_NAME, Board
from modules.ray_backend.replica import NAMESPACE, GenerationReplica

if TYPE_CHECKING:
    from modules.services import Services

log = logging.getLogger(__name__)
APP_NAME = "webui"


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
    return {"autoscaling_config": {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": 1}}


class RayBackend(Backend):
    """Jobs run on Ray Serve replicas; front jobs (order, scripts, progress) stay on the head's engine."""

    uses_ray = True

    def __init__(self, services: Services, address: str, replicas: tuple[int, int] | None = None,
                 models_per_replica: int = 1, num_cpus: int = 1) -> None:
        super().__init__(services.engine)
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(address=None if address == "local" else address, namespace=NAMESPACE, include_dashboard=False,
                     log_to_driver=False)
        self.board = ray.remote(Board).options(name=BOARD_NAME, namespace=NAMESPACE, get_if_exists=True,
                                               num_cpus=0).remote()
        serve.start(proxy_location="Disabled")
        deployment = serve.deployment(GenerationReplica, name="generation", max_ongoing_requests=1,
                                      ray_actor_options=replica_options(num_cpus), **scaling(replicas))
        self.handle = serve.run(deployment.bind(services.args, models_per_replica), name=APP_NAME,
                                route_prefix=None)

    def run_job(self, job: GenerationJob, ctx: JobContext) -> GenerationResult:
        """Send `job` to a replica holding its checkpoint; a replica that dies is retried once on another."""
        try:
            outcome = self._stream(job, ctx)
        except WorkerFailed as exc:
            if ctx.interrupted:
                raise
            log.warning("%s; running the job again on another replica", exc)
            outcome = self._stream(job, ctx)
        result = outcome.to_generation_result()
        if job.settings.save_dir is not None:
            self._save(job, outcome, result)
        return result

    def _stream(self, job: GenerationJob, ctx: JobContext) -> JobResult:
        job_id = job.job_id = uuid.uuid4().hex
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
                ctx.show(*event["progress"])
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
        plan = job.plan
        for index, (image, infotext) in enumerate(zip(result.images, result.infotexts)):
            subseed = plan.subseeds[index] if index < len(plan.subseeds) else outcome.params.subseed
            params = replace(outcome.params, seed=result.seeds[index], prompt=result.prompts[index],
                             negative_prompt=result.negative_prompts[index], subseed=subseed)
            try:
                result.paths.append(save_output(job.settings, job.hooks.p, image, params, index, outcome.job,
                                                outcome.model_name, outcome.model, outcome.params.prompt, infotext))
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
        serve.delete(APP_NAME)
        if self.started_ray:
            serve.shutdown()
            ray.shutdown()
