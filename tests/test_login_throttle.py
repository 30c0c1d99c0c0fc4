"""LoginThrottle on a hand-moved clock: free failures, then waits that double up to a cap, per address;
a right login starts the address again."""

from __future__ import annotations

from modules.api.login_throttle import LoginThrottle, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_after_the_free_failures_up_to_the_cap():
    clock = Clock()
    throttle = LoginThrottle(free_failures=3, first_wait_s=1.0, longest_wait_s=10.0, clock=clock)
    assert [throttle.failed("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.wait_left("a") == 0.0
    waits = []
    for _ in range(6):
        waits.append(throttle.failed("a"))
        assert throttle.wait_left("a") == waits[-1]
        clock.now += waits[-1]  # the address waits it out, then fails again
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert throttle.wait_left("b") == 0.0  # other addresses are not held up


def test_the_wait_runs_out_and_a_right_login_starts_again():
    clock = Clock()
    throttle = LoginThrottle(free_failures=1, first_wait_s=2.0, clock=clock)
    throttle.failed("a")
    assert throttle.failed("a") == 2.0
    clock.now += 1.5
    assert throttle.wait_left("a") == 0.5 and retry_after(0.5) == "1"
    clock.now += 0.5
    assert throttle.wait_left("a") == 0.0
    throttle.succeeded("a")
    assert throttle.failed("a") == 0.0  # the free failure again
