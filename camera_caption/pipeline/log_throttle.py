"""
Rate-limit repeated warnings: one line per distinct problem per period.

No ROS import.  ``should_log(key)`` says whether a message for ``key``
may be written now and how many were suppressed since the last one.
"""

import threading
import time


class LogThrottle:
    """Allow one message per ``key`` every ``period`` seconds."""

    def __init__(self, period=5.0, clock=time.monotonic):
        self.period = period
        self._clock = clock
        self._last = {}
        self._suppressed = {}
        self._lock = threading.Lock()

    def should_log(self, key):
        """Return ``(allowed, suppressed_since_last)`` for ``key``."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)

    def annotate(self, message, suppressed):
        """Append the suppressed count to ``message`` when there is one."""
        if suppressed:
            return (f'{message} (and {suppressed} more like it in the last '
                    f'{self.period:g} s)')
        return message
