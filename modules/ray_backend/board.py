"""The control board: one named Ray actor through which the head reaches the replica running a job
(interrupt, skip, answers to its script hooks) and the replicas tell what they hold and do
(GET /sdapi/v1/cluster). Its methods are coroutines, so a replica can wait on it for an answer."""

from __future__ import annotations

import asyncio
from typing import Any

BOARD_NAME = "webui-board"


class Board:
    """Per job: pending stop requests and hook answers; per replica: its last report."""

    def __init__(self) -> None:
        self._stops: dict[str, dict[str, bool]] = {}
        self._answers: dict[tuple[str, int], tuple[asyncio.Event, list]] = {}
        self._workers: dict[str, dict[str, Any]] = {}

    def _answer_slot(self, job_id: str, call: int) -> tuple[asyncio.Event, list]:
        return self._answers.setdefault((job_id, call), (asyncio.Event(), []))

    async def answer(self, job_id: str, call: int, value: Any) -> None:
        """The head's answer to script hook call number `call` of `job_id`."""
        ready, box = self._answer_slot(job_id, call)
        box.append(value)
        ready.set()

    async def await_answer(self, job_id: str, call: int, timeout: float) -> tuple[Any] | None:
        """(the answer,) to hook call `call` of `job_id` once the head gives it; None after `timeout` seconds."""
        ready, box = self._answer_slot(job_id, call)
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        del self._answers[(job_id, call)]
        return (box[0],)

    async def request(self, job_id: str, interrupt: bool = False, skip: bool = False) -> None:
        """Ask the replica that runs `job_id` to interrupt it or to skip its current batch."""
        stops = self._stops.setdefault(job_id, {"interrupt": False, "skip": False})
        stops["interrupt"] |= interrupt
        stops["skip"] |= skip

    async def take(self, job_id: str) -> dict[str, bool]:
        """The stop requests for `job_id` since the last call (an interrupt stays, a skip is used once)."""
        stops = self._stops.get(job_id, {"interrupt": False, "skip": False})
        taken = dict(stops)
        stops["skip"] = False
        return taken

    async def forget(self, job_id: str) -> None:
        self._stops.pop(job_id, None)
        for key in [key for key in self._answers if key[0] == job_id]:
            del self._answers[key]

    async def report(self, worker: dict[str, Any]) -> None:
        self._workers[worker["name"]] = worker

    async def drop(self, name: str) -> None:
        self._workers.pop(name, None)

    async def workers(self) -> list[dict[str, Any]]:
        return sorted(self._workers.values(), key=lambda worker: (worker["node"], worker["name"]))
