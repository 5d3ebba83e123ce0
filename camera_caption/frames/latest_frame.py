"""
Keep only the newest frame, and throttle how often work starts.

Plain Python (no ROS): the captioner's subscription callbacks ``put``
frames into :class:`LatestFrames` (one slot per camera); the worker takes
the newest frame of each when :class:`Throttle` allows.  A frame that is
replaced before it is taken is counted as dropped, so no backlog can ever
build up.
"""

from dataclasses import dataclass
import threading
import time

import numpy as np


@dataclass
class Frame:
    """One image to caption and where it came from."""

    image: np.ndarray          # H x W x 3 uint8 RGB
    stamp: float = 0.0         # header stamp, seconds
    frame_id: str = ''
    topic: str = ''


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


class LatestFrames:
    """
    One newest-frame slot per source (camera topic), one shared wake-up.

    ``take_all`` returns the newest frame of every source that has one, so
    a worker captions N cameras in one batch.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._items = {}
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, key, item):
        """Store ``item`` for ``key``, replacing an older one (dropped)."""
        with self._cond:
            if key in self._items:
                self.dropped += 1
            self._items[key] = item
            self.received += 1
            self._cond.notify_all()

    def take_all(self, timeout=None):
        """Return and remove ``{key: newest item}``; {} on timeout/close."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            items, self._items = self._items, {}
            return {} if self._closed else items

    def clear(self):
        """Drop everything held (counted as dropped)."""
        with self._cond:
            self.dropped += len(self._items)
            self._items = {}

    def close(self):
        """Wake every waiter; later ``take_all`` calls return {}."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
