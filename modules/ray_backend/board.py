"""The control board: one named Ray actor through which the head reaches the replica running a job
(interrupt, skip) and the replicas tell what they hold and do (GET /sdapi/v1/cluster)."""
from __future__ import annotations

from typing import Any

BOARD_NAME = "webui-board"


class Board:
    """Per job: pending stop requests; per replica: its last report."""

    def __init__(self) -> None:
        self._stops: dict[str, dict[str, bool]] = {}
        self._workers: dict[str, dict[str, Any]] = {}

    def request(self, job_id: str, interrupt: bool = False, skip: bool = False) -> None:
        """Ask the replica that runs `job_id` to interrupt it or to skip its current batch."""
        stops = self._stops.setdefault(job_id, {"interrupt": False, "skip": False})
        stops["interrupt"] |= interrupt
        stops["skip"] |= skip

    def take(self, job_id: str) -> dict[str, bool]:
        """The stop requests for `job_id` since the last call (an interrupt stays, a skip is used once)."""
        stops = self._stops.get(job_id, {"interrupt": False, "skip": False})
        taken = dict(stops)
        stops["skip"] = False
        return taken

    def forget(self, job_id: str) -> None:
        self._stops.pop(job_id, None)

    def report(self, worker: dict[str, Any]) -> None:
        self._workers[worker["name"]] = worker

    def drop(self, name: str) -> None:
        self._workers.pop(name, None)

    def workers(self) -> list[dict[str, Any]]:
        return sorted(self._workers.values(), key=lambda worker: (worker["node"], worker["name"]))
