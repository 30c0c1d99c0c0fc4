import threading
import time

import pytest


def test_jobs_run_in_fifo_order_one_at_a_time(engine):
    order, running = [], []

    def job(i):
        def run(ctx):
            running.append(i)
            assert len(running) == 1
            time.sleep(0.01)
            order.append(i)
            running.pop()
            return i

        return run

    futures = [engine.submit("j", job(i)) for i in range(6)]
    assert [f.result(5) for f in futures] == list(range(6))
    assert order == list(range(6))


def test_errors_reach_the_caller_and_the_worker_survives(engine):
    def fail(ctx):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        engine.call("fail", fail, timeout=5)
    assert engine.call("ok", lambda ctx: 7, timeout=5) == 7


def test_skip_ends_a_batch_and_interrupt_ends_the_job(engine):
    reached = [threading.Event() for _ in range(3)]

    def loop(ctx):
        ctx.set_job_count(3)
        seen = []
        for batch in range(3):
            if ctx.interrupted:
                break
            ctx.begin_batch(batch, 1000)
            steps = 0
            while steps < 1000 and not ctx.should_stop:
                steps += 1
                ctx.report_step(steps)
                reached[batch].set()
                time.sleep(0.005)
            seen.append((batch, steps))
        return seen, ctx.interrupted

    future = engine.submit("loop", loop)
    assert reached[0].wait(5)
    engine.skip()
    assert reached[1].wait(5)
    assert engine.progress.job_no == 1 and engine.progress.busy
    engine.interrupt()
    seen, interrupted = future.result(5)
    assert interrupted
    assert [batch for batch, _ in seen] == [0, 1]
    assert all(steps < 1000 for _, steps in seen)
    assert not reached[2].is_set()
    assert not engine.progress.busy


def test_after_a_skip_the_eta_comes_from_the_current_batch():
    from modules.core.engine import Progress

    now = time.monotonic()
    # Batch 1 of 2 was skipped early; batch 2 has made 5 of its 10 steps in 5 s (1 s a step).
    shown = Progress(job_no=1, job_count=2, step=5, steps=10, started_at=now - 8, batch_started_at=now - 5, busy=True)
    assert shown.eta == pytest.approx(8 * 0.25 / 0.75, abs=0.2)  # the job's pace: far too short
    assert Progress(**{**shown.__dict__, "after_skip": True}).eta == pytest.approx(5.0, abs=0.2)


def test_a_skip_marks_the_next_batch(engine):
    def job(ctx):
        ctx.begin_batch(0, 10)
        ctx.skipped = True
        ctx.begin_batch(1, 10)
        return engine.progress.after_skip, ctx.skipped

    assert engine.call("job", job, timeout=30) == (True, False)
    plain = engine.call("plain", lambda ctx: (ctx.begin_batch(0, 10), engine.progress.after_skip)[1], timeout=30)
    assert plain is False
