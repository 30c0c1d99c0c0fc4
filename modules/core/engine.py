"""The one engine: it owns the loaded model and runs every job, one at a time, from a FIFO queue."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from modules.core import cpu_threads
from modules.core.memory_release import release_freed_memory
from modules.errors import OutOfMemory

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """A snapshot of what the worker is doing, safe to read from any thread."""

    job: str = ""
    job_no: int = 0
    job_count: int = 0
    step: int = 0
    steps: int = 0
    started_at: float = 0.0
    batch_started_at: float = 0.0
    after_skip: bool = False  # a batch of this job was skipped: the time so far says little about the rest
    textinfo: str = ""
    busy: bool = False
    queued: int = 0
    preview_id: int = 0  # changes whenever a new live preview can be had from Engine.preview()

    @property
    def fraction(self) -> float:
        """Done part of the current job, 0..1, counting finished batches and steps."""
        if not self.busy or self.job_count == 0:
            return 0.0
        per_batch = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.job_no + per_batch) / self.job_count)

    @property
    def eta(self) -> float | None:
        """Seconds left, from the time spent so far (after a Skip, from the current batch's pace, once it has
        made a step); None before the first step."""
        now = time.monotonic()
        if self.after_skip and self.step > 0 and self.steps:
            per_step = (now - self.batch_started_at) / self.step
            return per_step * (self.steps - self.step + max(0, self.job_count - self.job_no - 1) * self.steps)
        done = self.fraction
        if done <= 0:
            return None
        return (now - self.started_at) * (1 - done) / done


class JobContext:
    """What a running job sees: progress reporting and the interrupt/skip flags."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.interrupted = False
        self.skipped = False
        self.first_model: Any = None  # the ModelUsed of the job's first generation (a script's own result's model)

    def set_job_count(self, count: int) -> None:
        self._engine._update(job_count=count, job_no=0, step=0)

    def begin_batch(self, job_no: int, steps: int) -> None:
        """Start batch `job_no`; clears a pending skip."""
        changes: dict[str, Any] = {"after_skip": True} if self.skipped else {}
        self.skipped = False
        self._engine._update(job_no=job_no, step=0, steps=steps, batch_started_at=time.monotonic(), **changes)

    def report_step(self, step: int, textinfo: str = "") -> None:
        self._engine._update(step=step, textinfo=textinfo)

    def show(self, job_no: int, job_count: int, step: int, steps: int, textinfo: str = "") -> None:
        """Show the progress of this job's part that runs elsewhere (a Ray Serve replica) as this job's."""
        self._engine._update(job_no=job_no, job_count=job_count, step=step, steps=steps, textinfo=textinfo)

    def set_preview(self, make: Callable[[], Any]) -> None:
        """Offer a live preview; `make()` builds the image when someone asks for it."""
        self._engine._set_preview(make)

    @property
    def should_stop(self) -> bool:
        """True when the sampling loop must end now (interrupt, or skip of this batch)."""
        return self.interrupted or self.skipped


@dataclass
class _Job:
    name: str
    run: Callable[[JobContext], Any]
    future: Future = field(default_factory=Future)


class Engine:
    """Queue jobs with `submit`; a single worker thread runs them in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._progress = Progress()
        self._context: JobContext | None = None
        self._preview_make: Callable[[], Any] | None = None
        self._preview_cache: tuple[int, Any] | None = None
        self._ids = itertools.count(1)
        self._worker = threading.Thread(target=self._work, name="engine-worker", daemon=True)
        self._worker.start()

    def submit(self, name: str, run: Callable[[JobContext], T]) -> Future[T]:
        """Queue `run(context)`; the returned future holds its result or exception."""
        job = _Job(f"{name}#{next(self._ids)}", run)
        self._queue.put(job)
        self._update(queued=self._queue.qsize())
        return job.future

    def call(self, name: str, run: Callable[[JobContext], T], timeout: float | None = None) -> T:
        """Queue a job and wait for its result."""
        return self.submit(name, run).result(timeout)

    def run_in_job(self, name: str, run: Callable[[JobContext], T]) -> T:
        """Run `run` at once inside the current job when called from one (a script calling
        process_images), else queue it as a job of its own and wait."""
        if threading.current_thread() is self._worker and self._context is not None:
            return run(self._context)
        return self.call(name, run)

    def interrupt(self) -> None:
        """Stop the current job at its next step; it returns what it has done."""
        with self._lock:
            if self._context is not None:
                self._context.interrupted = True

    def skip(self) -> None:
        """End the current batch of the current job and go on with the next one."""
        with self._lock:
            if self._context is not None:
                self._context.skipped = True

    def preview(self) -> Any:
        """The running job's latest live preview image (built once per offer), or None."""
        with self._lock:
            make, key = self._preview_make, self._progress.preview_id
            cached = self._preview_cache
        if make is None:
            return None
        if cached is not None and cached[0] == key:
            return cached[1]
        cpu_threads.single_threaded()  # built in the asking thread, which must not start an OpenMP pool
        try:
            image = make()
        except Exception:
            log.exception("Could not make a live preview")
            return None
        with self._lock:
            self._preview_cache = (key, image)
        return image

    def _set_preview(self, make: Callable[[], Any]) -> None:
        with self._lock:
            self._preview_make = make
            self._progress = replace(self._progress, preview_id=self._progress.preview_id + 1)

    @property
    def context(self) -> JobContext | None:
        """The running job's context, or None when idle."""
        with self._lock:
            return self._context

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def shutdown(self) -> None:
        """Stop the worker after the jobs already queued."""
        self._queue.put(None)
        self._worker.join()

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._progress = replace(self._progress, **changes)

    def _work(self) -> None:
        cpu_threads.mark_compute_thread()
        while (job := self._queue.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            context = JobContext(self)
            with self._lock:
                self._context = context
                self._progress = Progress(
                    job=job.name, started_at=time.monotonic(), busy=True, job_count=1, queued=self._queue.qsize()
                )
            out_of_memory = False
            try:
                job.future.set_result(job.run(context))
            except BaseException as exc:  # the future carries it to the caller
                log.debug("job %s failed: %s", job.name, exc)
                out_of_memory = is_out_of_memory(exc)
                job.future.set_exception(out_of_memory_error(job.name, exc) if out_of_memory else exc)
            finally:
                with self._lock:
                    self._context = None
                    self._preview_make = self._preview_cache = None
                    self._progress = Progress(queued=self._queue.qsize())
            if out_of_memory:
                release_freed_memory()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for Python's MemoryError and torch's out-of-memory errors (CUDA, MPS, XPU)."""
    import torch

    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def out_of_memory_error(job_name: str, exc: BaseException) -> OutOfMemory:
    """The message the caller gets. The original exception's traceback is dropped: its frames hold
    the job's tensors, which must go before the next job starts."""
    exc.__traceback__ = None
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    log.warning("Out of memory in %s (%s); caches freed, the next job runs normally", job_name, first_line)
    return OutOfMemory(
        f"Out of memory: {first_line}. Try a smaller image size, batch size or hires fix "
        "scale; memory was freed and other jobs can run."
    )
