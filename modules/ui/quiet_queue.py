"""Gradio's queue, woken by work instead of polling for it.

Gradio's queue runs two loops: one starts waiting events (every 1 ms it looks whether there is one, or whether a
busy worker has come free) and one sends progress (every 10 ms, jobs or not). An idle server woke over a thousand
times a second for them. `quiet_queue(page)` gives both loops naps that end when there is something to do:
- the nap of the loop that starts events ends when an event is pushed or a job ends, at the latest after
  IDLE_WAIT_S;
- the progress loop's ends when a job starts, at the latest after IDLE_WAIT_S; while jobs run, that loop sends
  progress every PROGRESS_POLL_S, as before.

The loops pass their nap to `asyncio.sleep`. A nap is a float that also knows how to wait for its wake-up, and
gradio.queueing's `asyncio` is this module's stand-in that waits for a nap that way; every other sleep and name is
asyncio's own. A wake-up that comes before the loop naps is kept (an asyncio.Event), so none is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import gradio as gr
import gradio.queueing

IDLE_WAIT_S = 0.5  # the longest nap: a wake-up this module did not foresee is late by at most this much
PROGRESS_POLL_S = 0.05  # progress goes out this often while jobs run (Gradio's pace on Windows is 0.1 s)


class Nap(float):
    """A sleep of at most its value that ends when `wake` is set; while `busy()`, a sleep of `busy_poll_s`."""

    wake: asyncio.Event
    busy: Callable[[], bool]
    busy_poll_s: float

    @classmethod
    def create(cls, wake: asyncio.Event, busy: Callable[[], bool] = lambda: False, busy_poll_s: float = 0.0) -> Nap:
        nap = cls(IDLE_WAIT_S)
        nap.wake, nap.busy, nap.busy_poll_s = wake, busy, busy_poll_s
        return nap

    async def take(self) -> None:
        if self.busy():
            await asyncio.sleep(self.busy_poll_s)
            return
        try:
            await asyncio.wait_for(self.wake.wait(), timeout=float(self))
        except TimeoutError:
            pass
        self.wake.clear()


class _AsyncioTakingNaps:
    """asyncio, except that `sleep` takes a Nap as a nap."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(delay: float, result: Any = None) -> Any:
        if isinstance(delay, Nap):
            await delay.take()
            return result
        return await asyncio.sleep(delay, result)


def quiet_queue(page: gr.Blocks) -> None:
    """Give the loops of `page`'s Gradio queue (made with the page, or again by `page.queue()`) naps that work ends."""
    queue = page._queue
    new_work, jobs_started = asyncio.Event(), asyncio.Event()
    push, process_events = queue.push, queue.process_events

    async def push_and_wake(*args: Any, **kwargs: Any) -> Any:
        try:
            return await push(*args, **kwargs)
        finally:
            new_work.set()

    async def process_and_wake(*args: Any, **kwargs: Any) -> Any:
        jobs_started.set()
        try:
            return await process_events(*args, **kwargs)
        finally:
            new_work.set()  # a worker came free: a waiting event may start now

    queue.push = push_and_wake
    queue.process_events = process_and_wake
    queue.sleep_when_free = Nap.create(new_work)
    queue.progress_update_sleep_when_free = Nap.create(
        jobs_started, busy=lambda: queue.get_active_worker_count() > 0, busy_poll_s=PROGRESS_POLL_S
    )
    gradio.queueing.asyncio = _AsyncioTakingNaps()
