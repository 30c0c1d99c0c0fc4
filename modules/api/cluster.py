"""GET /sdapi/v1/cluster (beyond A1111): the workers that run generation jobs, and what each holds and does."""

from __future__ import annotations

from pydantic import BaseModel, Field

from modules.core.services import Services


class WorkerItem(BaseModel):
    name: str = Field(description="The worker: `local`, or a Ray Serve replica's id")
    node: str = Field(description="The machine it runs on")
    device: str = Field(description="The torch device it generates on")
    loaded: list[str] = Field(description="Short hashes of the checkpoints it holds")
    loads: int = Field(description="How many checkpoints it has loaded so far")
    running: str | None = Field(description="The job it runs now, if any")
    jobs_done: int = Field(description="How many generation jobs it has finished")
    pid: int = Field(description="Its process id on its node")


class ClusterResponse(BaseModel):
    backend: str = Field(description="`in-process`, or `ray` with --ray-address")
    workers: list[WorkerItem]


def cluster_info(services: Services) -> ClusterResponse:
    backend = services.backend
    return ClusterResponse(backend=backend.name, workers=[WorkerItem(**w.as_dict()) for w in backend.workers()])
