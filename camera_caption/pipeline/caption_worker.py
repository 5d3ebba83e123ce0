"""
The worker thread that captions the newest frames at a throttled rate.

No ROS import.  The node's subscription callbacks only ``submit`` frames
into the worker's :class:`~camera_caption.frames.latest_frame.LatestFrames` (one
slot per camera topic); this thread takes the newest frame of every camera
when the throttle allows, captions them in one batch and hands each text to
``on_caption``.  The ROS executor is never blocked by inference, and a
frame is never captioned after a newer one of the same camera arrived.
"""

from dataclasses import dataclass
import threading
import time

from camera_caption.pipeline.caption_gates import CaptionDeduper, SceneChangeGate
from camera_caption.frames.latest_frame import LatestFrames, Throttle


@dataclass
class CaptionResult:
    """A caption and the timings that produced it."""

    text: str
    frame: object                 # the Frame that was captioned
    inference_seconds: float
    started: float                # time.monotonic() at inference start
    batch_size: int = 1


class CaptionWorker:
    """
    Run ``caption_fn(images, prompt, max_new_tokens)`` off-thread.

    ``settings`` is read before every batch, so live changes of ``prompt``,
    ``max_new_tokens``, ``rate_hz``, ``enable`` and the gate settings
    (``scene_change_threshold``, ``dedupe``, ``dedupe_similarity``;
    optional) apply to the next one.  While ``enable`` is false no
    inference runs and held frames are dropped.
    """

    def __init__(self, caption_fn, on_caption, on_error, settings,
                 clock=time.monotonic):
        self.slots = LatestFrames()
        self._caption_fn = caption_fn
        self._on_caption = on_caption
        self._on_error = on_error
        self._settings = settings
        self._throttle = Throttle(settings['rate_hz'], clock)
        self._clock = clock
        self.gates = {}        # topic -> SceneChangeGate
        self.dedupers = {}     # topic -> CaptionDeduper
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run,
                                        name='caption_worker', daemon=True)
        self.captions = 0      # frames captioned (inference done)
        self.batches = 0
        self.last_batch_size = 0
        self.errors = 0
        # True once the thread saw enable false and finished its batch.
        self.paused = False

    @property
    def gate_passed(self):
        """Frames the scene-change gates let through."""
        return sum(g.passed for g in self.gates.values())

    @property
    def gate_skipped(self):
        """Frames the scene-change gates held back."""
        return sum(g.gated for g in self.gates.values())

    @property
    def dedupe_suppressed(self):
        """Captions not published as repeats."""
        return sum(d.suppressed for d in self.dedupers.values())

    def start(self):
        """Start the thread."""
        self._thread.start()
        return self

    def submit(self, frame):
        """Offer a frame; it replaces its camera's frame not yet captioned."""
        self.slots.put(frame.topic, frame)

    def stop(self, timeout=2.0):
        """Stop the thread and wait for it (at most ``timeout`` s)."""
        self._stop.set()
        self.slots.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _gate(self, topic):
        settings = self._settings
        gate = self.gates.setdefault(topic, SceneChangeGate())
        gate.threshold = settings.get('scene_change_threshold', 0.0)
        deduper = self.dedupers.setdefault(topic, CaptionDeduper())
        deduper.enabled = settings.get('dedupe', False)
        deduper.similarity = settings.get('dedupe_similarity', 1.0)
        return gate, deduper

    def _run(self):
        while not self._stop.is_set():
            self._throttle.rate_hz = self._settings['rate_hz']
            self.paused = not self._settings.get('enable', True)
            if self.paused:
                self.slots.clear()             # paused: hold nothing stale
                self._stop.wait(0.05)
                continue
            delay = self._throttle.wait_time()
            if delay > 0:
                self._stop.wait(min(delay, 0.1))
                continue
            frames = self.slots.take_all(timeout=0.1)
            if not frames:
                continue
            started = self._clock()
            self._throttle.mark(started)
            batch = [f for topic, f in sorted(frames.items())
                     if self._gate(topic)[0].should_caption(f.image)]
            if batch:
                self._caption(batch, started)

    def _caption(self, batch, started):
        try:
            texts = self._caption_fn(
                [frame.image for frame in batch], self._settings['prompt'],
                self._settings['max_new_tokens'])
        except Exception as exc:  # noqa: B902 - keep captioning
            self.errors += 1
            self._on_error(batch[0], exc)
            return
        elapsed = self._clock() - started
        self.batches += 1
        self.last_batch_size = len(batch)
        self.captions += len(batch)
        for frame, text in zip(batch, texts):
            if self._gate(frame.topic)[1].should_publish(text):
                self._on_caption(CaptionResult(text, frame, elapsed, started,
                                               len(batch)))
