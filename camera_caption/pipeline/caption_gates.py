"""
Say only what changed: a scene-change gate and a caption deduper.

No ROS import.  :class:`SceneChangeGate` compares a small grey copy of each
frame with the last captioned one and lets inference run only when the
mean absolute difference (0-255) reaches ``threshold``; 0 turns it off.
:class:`CaptionDeduper` suppresses a caption equal, or nearly equal (text
similarity >= ``similarity``), to the last one published.
"""

import difflib

import cv2
import numpy as np

THUMBNAIL = (32, 24)


def thumbnail(image):
    """Return a small grey float32 copy of an RGB frame."""
    small = cv2.resize(image, THUMBNAIL, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)


class SceneChangeGate:
    """Let a frame through only when it differs enough from the last one."""

    def __init__(self, threshold=0.0):
        self.threshold = threshold
        self._last = None
        self.passed = 0
        self.gated = 0
        self.last_difference = None

    def should_caption(self, image):
        """Return True if ``image`` is a changed scene (or the gate is off)."""
        if not self.threshold:
            self.passed += 1
            return True
        thumb = thumbnail(image)
        if self._last is not None:
            self.last_difference = float(np.abs(thumb - self._last).mean())
            if self.last_difference < self.threshold:
                self.gated += 1
                return False
        self._last = thumb
        self.passed += 1
        return True


class CaptionDeduper:
    """Suppress captions (nearly) identical to the previous one."""

    def __init__(self, enabled=False, similarity=1.0):
        self.enabled = enabled
        self.similarity = similarity
        self._last = None
        self.suppressed = 0

    def should_publish(self, text):
        """Return True if ``text`` is new enough to publish."""
        if self.enabled and self._last is not None:
            if text == self._last or (
                    self.similarity < 1.0 and difflib.SequenceMatcher(
                        None, text, self._last).ratio() >= self.similarity):
                self.suppressed += 1
                return False
        self._last = text
        return True
