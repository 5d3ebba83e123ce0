"""
Events per second over the last report period.

Plain Python, no ROS: counters only go up; :meth:`RateWindow.per_second`
turns them into the rate since the previous call (a diagnostics period).
"""

import threading
import time


class RateWindow:
    """Events per second over the period since the last call."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._count = 0
        self._last_count = 0
        self._last_time = clock()
        self._lock = threading.Lock()

    def add(self, n=1):
        """Count ``n`` events."""
        with self._lock:
            self._count += n

    @property
    def total(self):
        """All events counted so far."""
        return self._count

    def per_second(self):
        """Return events per second since the previous call."""
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._last_time, 1e-9)
            rate = (self._count - self._last_count) / elapsed
            self._last_count, self._last_time = self._count, now
            return rate
