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

from camera_caption.frames.latest_frame import LatestFrames, Throttle
from camera_caption.pipeline.caption_gates import (CaptionDeduper,
                                                   SceneChangeGate)


@dataclass
class CaptionResult:
    """A caption and how long its batch's inference took."""

    text: str
    frame: object                 # the Frame that was captioned
    inference_seconds: float


class CaptionWorker:
    """
    Run ``caption_fn(images, prompt, max_new_tokens)`` off-thread.

    ``settings`` (a :class:`~camera_caption.pipeline.settings.
    CaptionSettings`) is replaced whole by :meth:`update` and read once per
    batch, so a live change applies to the next batch.  While ``enable`` is
    false no inference runs and held frames are dropped.
    """

    def __init__(self, caption_fn, on_caption, on_error, settings,
                 clock=time.monotonic):
        self.slots = LatestFrames()
        self._caption_fn = caption_fn
        self._on_caption = on_caption
        self._on_error = on_error
        self._settings = settings
        self._throttle = Throttle(settings.rate_hz, clock)
        self._clock = clock
        self._gates = {}       # topic -> SceneChangeGate
        self._dedupers = {}    # topic -> CaptionDeduper
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
    def settings(self):
        """Return the settings the next batch will use."""
        return self._settings

    def update(self, settings):
        """Use ``settings`` from the next batch on."""
        self._settings = settings
        for gate in self._gates.values():
            gate.threshold = settings.scene_change_threshold
        for deduper in self._dedupers.values():
            deduper.enabled = settings.dedupe
            deduper.similarity = settings.dedupe_similarity

    @property
    def gate_passed(self):
        """Frames the scene-change gates let through."""
        return sum(g.passed for g in list(self._gates.values()))

    @property
    def gate_skipped(self):
        """Frames the scene-change gates held back."""
        return sum(g.gated for g in list(self._gates.values()))

    @property
    def dedupe_suppressed(self):
        """Captions not published as repeats."""
        return sum(d.suppressed for d in list(self._dedupers.values()))

    def stats(self):
        """Return a snapshot of the worker's figures."""
        differences = [g.last_difference for g in list(self._gates.values())
                       if g.last_difference is not None]
        return {
            'captions': self.captions,
            'batches': self.batches,
            'batch_size_last': self.last_batch_size,
            'inference_errors': self.errors,
            'frames_received': self.slots.received,
            'frames_dropped': self.slots.dropped,
            'scene_gate_passed': self.gate_passed,
            'scene_gate_skipped': self.gate_skipped,
            'scene_difference_last': max(differences, default=None),
            'dedupe_suppressed': self.dedupe_suppressed,
        }

    @property
    def running(self):
        """Whether the thread runs (started and not stopped)."""
        return self._thread.is_alive()

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
        if topic not in self._gates:
            self._gates[topic] = SceneChangeGate(
                self._settings.scene_change_threshold)
        return self._gates[topic]

    def _deduper(self, topic):
        if topic not in self._dedupers:
            self._dedupers[topic] = CaptionDeduper(
                self._settings.dedupe, self._settings.dedupe_similarity)
        return self._dedupers[topic]

    def _run(self):
        while not self._stop.is_set():
            settings = self._settings          # one consistent set a batch
            self._throttle.rate_hz = settings.rate_hz
            self.paused = not settings.enable
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
                     if self._gate(topic).should_caption(f.image)]
            if batch:
                self._caption(batch, started, settings)

    def _caption(self, batch, started, settings):
        try:
            texts = self._caption_fn(
                [frame.image for frame in batch], settings.prompt,
                settings.max_new_tokens)
        except Exception as exc:  # noqa: B902 - keep captioning
            self.errors += 1
            self._on_error(batch, exc)
            return
        elapsed = self._clock() - started
        self.batches += 1
        self.last_batch_size = len(batch)
        self.captions += len(batch)
        for frame, text in zip(batch, texts):
            if self._deduper(frame.topic).should_publish(text):
                self._on_caption(CaptionResult(text, frame, elapsed))
