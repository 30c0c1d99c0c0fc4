"""Failed logins per client address: a few are free, then each further failure makes that address wait
twice as long as the last (up to a cap) before its next try is even checked."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
FIRST_WAIT_S = 1.0
LONGEST_WAIT_S = 300.0
MAX_ADDRESSES = 10_000  # beyond this many addresses on record, those no longer waiting are forgotten
# The login form can't show the 429's message, so the page says beforehand what happens.
LOGIN_PAGE_NOTE = (
    f"After {FREE_FAILURES} wrong passwords in a row, this address must wait before each next try: "
    f"{FIRST_WAIT_S:g} s, then twice as long each time, up to {LONGEST_WAIT_S / 60:g} minutes. "
    "While it waits, Login does nothing."
)


@dataclass
class _Record:
    failures: int = 0
    until: float = 0.0  # the clock time before which this address is refused


class LoginThrottle:
    """Counts failed logins by client address. `wait_left` says how long an address must still wait
    (0: its next try may be checked); `failed` records a failure; `succeeded` forgets the address."""

    def __init__(
        self,
        free_failures: int = FREE_FAILURES,
        first_wait_s: float = FIRST_WAIT_S,
        longest_wait_s: float = LONGEST_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.first_wait_s = first_wait_s
        self.longest_wait_s = longest_wait_s
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait_left(self, address: str) -> float:
        """Seconds `address` must wait before a login of its is checked again."""
        with self._lock:
            record = self._records.get(address)
            return max(0.0, record.until - self._clock()) if record else 0.0

    def failed(self, address: str) -> float:
        """Record a failed login; returns the wait it imposes (0 while failures are still free)."""
        with self._lock:
            if address not in self._records and len(self._records) >= MAX_ADDRESSES:
                self._forget_idle()
            record = self._records.setdefault(address, _Record())
            record.failures += 1
            extra = record.failures - self.free_failures
            if extra <= 0:
                return 0.0
            wait = min(self.longest_wait_s, self.first_wait_s * 2 ** min(extra - 1, 64))
            record.until = self._clock() + wait
            return wait

    def succeeded(self, address: str) -> None:
        """A right login: the address starts again with its free failures."""
        with self._lock:
            self._records.pop(address, None)

    def _forget_idle(self) -> None:
        now = self._clock()
        for address in [a for a, record in self._records.items() if record.until <= now]:
            del self._records[address]


def retry_after(wait_s: float) -> str:
    """A wait as the Retry-After header writes it: whole seconds, rounded up."""
    return str(max(1, math.ceil(wait_s)))
