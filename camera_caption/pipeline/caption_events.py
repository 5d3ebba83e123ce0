"""
Word-triggered events: a caption that newly matches a watched pattern.

No ROS import.  The ``watch`` parameter's syntax (comma-separated,
case-insensitive regular expressions) is the contract's
(:mod:`camera_caption.contract.watch_patterns`).  :class:`EventMatcher`
is edge-triggered per camera and pattern: an event fires when a caption
matches and the camera's previous caption did not, unless the same
pattern fired for that camera less than ``holdoff_s`` ago, so a scene that
stays the same (or flickers in and out of the match) does not repeat it.
"""

import threading

from camera_caption.contract.watch_patterns import (compile_patterns,
                                                    split_watch)

__all__ = ['compile_patterns', 'EventMatcher', 'split_watch']


class EventMatcher:
    """Say which watched patterns a camera's caption newly matches."""

    def __init__(self, patterns=(), holdoff_s=30.0):
        self._lock = threading.Lock()
        self._patterns = compile_patterns(patterns)
        self.holdoff_s = float(holdoff_s)
        self._matching = {}     # (camera, pattern) -> matched last caption
        self._last_event = {}   # (camera, pattern) -> time of last event
        self.events = 0
        self.held_off = 0       # rising edges not reported (hold-off)

    @property
    def patterns(self):
        """Return the watched pattern strings."""
        return tuple(p.pattern for p in self._patterns)

    def update(self, patterns, holdoff_s):
        """Watch ``patterns`` from now on; known patterns keep their state."""
        compiled = compile_patterns(patterns)
        with self._lock:
            self._patterns = compiled
            self.holdoff_s = float(holdoff_s)
            keep = set(self.patterns)
            self._matching = {k: v for k, v in self._matching.items()
                              if k[1] in keep}

    def match(self, camera, caption, now):
        """
        Return the patterns that fire for ``caption`` of ``camera``.

        ``now`` is a monotonic time in seconds (for the hold-off).
        """
        fired = []
        with self._lock:
            for regex in self._patterns:
                key = (camera, regex.pattern)
                matches = regex.search(caption) is not None
                was = self._matching.get(key, False)
                self._matching[key] = matches
                if not matches or was:
                    continue
                last = self._last_event.get(key)
                if last is not None and now - last < self.holdoff_s:
                    self.held_off += 1
                    continue
                self._last_event[key] = now
                self.events += 1
                fired.append(regex.pattern)
        return fired
