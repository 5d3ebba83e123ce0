"""
The worker thread that captions the newest frame at a throttled rate.

No ROS import.  The node's subscription callback only ``put``s frames into
the worker's :class:`~camera_caption.latest_frame.LatestFrameSlot`; this
thread takes the newest one when the throttle allows, runs the engine and
hands the text to ``on_caption``.  The ROS executor is never blocked by
inference, and a frame is never captioned after a newer one arrived.
"""

from dataclasses import dataclass
import threading
import time

from camera_caption.caption_gates import CaptionDeduper, SceneChangeGate
from camera_caption.latest_frame import LatestFrameSlot, Throttle


@dataclass
class CaptionResult:
    """A caption and the timings that produced it."""

    text: str
    frame: object                 # the Frame that was captioned
    inference_seconds: float
    started: float                # time.monotonic() at inference start


class CaptionWorker:
    """
    Run ``caption_fn([image], prompt, max_new_tokens)`` off-thread.

    ``settings`` is read before every caption, so live changes of
    ``prompt``, ``max_new_tokens``, ``rate_hz``, ``enable`` and the gate
    settings (``scene_change_threshold``, ``dedupe``,
    ``dedupe_similarity``; optional) apply to the next one.  While
    ``enable`` is false no inference runs and held frames are dropped.
    """

    def __init__(self, caption_fn, on_caption, on_error, settings,
                 clock=time.monotonic):
        self.slot = LatestFrameSlot()
        self._caption_fn = caption_fn
        self._on_caption = on_caption
        self._on_error = on_error
        self._settings = settings
        self._throttle = Throttle(settings['rate_hz'], clock)
        self._clock = clock
        self.gate = SceneChangeGate()
        self.deduper = CaptionDeduper()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run,
                                        name='caption_worker', daemon=True)
        self.captions = 0
        self.errors = 0

    def start(self):
        """Start the thread."""
        self._thread.start()
        return self

    def submit(self, frame):
        """Offer a frame; it replaces any frame not yet captioned."""
        self.slot.put(frame)

    def stop(self, timeout=2.0):
        """Stop the thread and wait for it (at most ``timeout`` s)."""
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _apply_settings(self):
        settings = self._settings
        self._throttle.rate_hz = settings['rate_hz']
        self.gate.threshold = settings.get('scene_change_threshold', 0.0)
        self.deduper.enabled = settings.get('dedupe', False)
        self.deduper.similarity = settings.get('dedupe_similarity', 1.0)
        return settings.get('enable', True)

    def _run(self):
        while not self._stop.is_set():
            if not self._apply_settings():
                self.slot.take(timeout=0)       # paused: hold nothing stale
                self._stop.wait(0.05)
                continue
            delay = self._throttle.wait_time()
            if delay > 0:
                self._stop.wait(min(delay, 0.1))
                continue
            frame = self.slot.take(timeout=0.1)
            if frame is None:
                continue
            started = self._clock()
            self._throttle.mark(started)
            if not self.gate.should_caption(frame.image):
                continue
            try:
                texts = self._caption_fn(
                    [frame.image], self._settings['prompt'],
                    self._settings['max_new_tokens'])
            except Exception as exc:  # noqa: B902 - keep captioning
                self.errors += 1
                self._on_error(frame, exc)
                continue
            self.captions += 1
            if self.deduper.should_publish(texts[0]):
                self._on_caption(CaptionResult(
                    texts[0], frame, self._clock() - started, started))
