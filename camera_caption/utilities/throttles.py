"""
Throttles: how often work may start, and how often a warning may be logged.

Plain Python, no ROS: :class:`Throttle` paces the captioning worker at
``rate_hz``; :class:`LogThrottle` lets one line per distinct problem through
per period and counts the rest, so bad input never floods a log.
"""

import threading
import time


class Throttle:
    """Allow a start at most ``rate_hz`` times per second."""

    def __init__(self, rate_hz, clock=time.monotonic):
        self._clock = clock
        self._last = None
        self.rate_hz = rate_hz

    @property
    def rate_hz(self):
        """Return the starts per second allowed (> 0)."""
        return self._rate_hz

    @rate_hz.setter
    def rate_hz(self, value):
        value = float(value)
        if not value > 0:
            raise ValueError(f'rate_hz must be > 0, got {value!r}')
        self._rate_hz = value

    def wait_time(self, now=None):
        """Seconds to wait before the next start is allowed (0 if now)."""
        if self._last is None:
            return 0.0
        now = self._clock() if now is None else now
        return max(0.0, self._last + 1.0 / self._rate_hz - now)

    def mark(self, now=None):
        """Record that work starts now."""
        self._last = self._clock() if now is None else now


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

    def warn(self, log, key, message):
        """Call ``log(message)`` unless ``key`` was logged this period."""
        allowed, suppressed = self.should_log(key)
        if allowed:
            log(self.annotate(message, suppressed))

    def bound(self, log):
        """Return ``warn(key, message)`` that logs through ``log``."""
        return lambda key, message: self.warn(log, key, message)
