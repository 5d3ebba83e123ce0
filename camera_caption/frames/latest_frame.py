"""
Keep only the newest frame of each camera.

Plain Python (no ROS): the captioner's subscription callbacks ``put``
frames into :class:`LatestFrames` (one slot per camera); the worker takes
the newest frame of each when
:class:`~camera_caption.utilities.throttles.Throttle` allows.  A frame that is
replaced before it is taken is counted as dropped, so no backlog can ever
build up.
"""

from dataclasses import dataclass
import threading

import numpy as np


@dataclass
class Frame:
    """One image to caption and where it came from."""

    image: np.ndarray          # H x W x 3 uint8 RGB
    stamp: float = 0.0         # header stamp, seconds
    frame_id: str = ''
    topic: str = ''
    header: object = None      # the message header, for outputs echoing it


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

    def waiting(self):
        """Return whether any item waits to be taken."""
        with self._cond:
            return bool(self._items)

    def peek_all(self):
        """Return ``{key: newest item}`` without taking anything."""
        with self._cond:
            return dict(self._items)

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
