"""modules/ui/quiet_queue.py: the queue's naps end as soon as there is work, a wake-up that comes first is kept,
and progress keeps its pace while jobs run."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import gradio.queueing

from modules.ui.quiet_queue import IDLE_WAIT_S, PROGRESS_POLL_S, Nap, quiet_queue


def test_a_nap_ends_at_its_wake_up_and_keeps_an_early_one():
    async def naps() -> None:
        wake = asyncio.Event()
        nap = Nap.create(wake)
        asyncio.get_running_loop().call_later(0.05, wake.set)
        await asyncio.wait_for(gradio.queueing.asyncio.sleep(nap), IDLE_WAIT_S / 2)
        assert not wake.is_set()  # taken
        wake.set()  # before the nap: kept for it
        await asyncio.wait_for(gradio.queueing.asyncio.sleep(nap), IDLE_WAIT_S / 2)
        started = time.monotonic()
        await gradio.queueing.asyncio.sleep(nap)  # nothing wakes it: the longest nap
        assert time.monotonic() - started >= IDLE_WAIT_S * 0.9

    quiet_queue(queued_page())
    in_a_thread_of_its_own(naps())


def test_the_queue_wakes_on_a_push_and_progress_keeps_its_pace_during_jobs():
    page = queued_page()
    queue = page._queue
    pushed = []

    async def push(*args, **kwargs):
        pushed.append(args)
        return True, "event", "success"

    queue.push = push
    quiet_queue(page)

    async def run() -> None:
        loop_nap = asyncio.create_task(gradio.queueing.asyncio.sleep(queue.sleep_when_free))
        await asyncio.sleep(0.01)
        assert await queue.push("body") == (True, "event", "success") and pushed == [("body",)]
        await asyncio.wait_for(loop_nap, IDLE_WAIT_S / 2)  # woken by the push
        queue.active_jobs = [["a job"]]
        started = time.monotonic()
        await gradio.queueing.asyncio.sleep(queue.progress_update_sleep_when_free)
        assert time.monotonic() - started < (PROGRESS_POLL_S + IDLE_WAIT_S) / 2

    in_a_thread_of_its_own(run())


def queued_page() -> gr.Blocks:
    with gr.Blocks() as page:  # Gradio gives a page its queue as it is made
        gr.Textbox()
    return page


def in_a_thread_of_its_own(coroutine) -> None:
    """asyncio.run on a fresh thread: an earlier test (Playwright's sync API) may have left a loop on this one."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, coroutine).result()
