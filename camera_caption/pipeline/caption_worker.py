"""
The worker thread that captions the newest frames at a throttled rate.

No ROS import.  The node's subscription callbacks only ``submit`` frames
into the worker's :class:`~camera_caption.frames.latest_frame.LatestFrames` (one
slot per camera topic); this thread takes the newest frame of every camera
when the throttle allows, captions them in one batch and hands each text to
``on_caption``.  The ROS executor is never blocked by inference, and a
frame is never captioned after a newer one of the same camera arrived.

Questions (a :class:`~camera_caption.pipeline.question_queue.QuestionQueue`)
are answered by the same thread, in order, on the newest frame of every
camera (the one waiting, else the last one taken): one question whenever
no caption is due, and when both wait, questions and caption batches take
turns, so that neither starves the other.
"""

from dataclasses import dataclass
import threading
import time

from camera_caption.frames.latest_frame import LatestFrames
from camera_caption.pipeline.caption_gates import (CaptionDeduper,
                                                   SceneChangeGate)
from camera_caption.pipeline.clip_ring import (ClipRing, distinct_count,
                                               timed_clip)
from camera_caption.pipeline.question_queue import question_prompt
from camera_caption.utilities.throttles import Throttle


@dataclass
class CaptionResult:
    """A caption and how long its batch's inference took."""

    text: str
    frame: object                 # the Frame that was captioned
    inference_seconds: float
    clip_first: float = None      # clip mode: first and last image stamps
    clip_last: float = None
    clip_frames: int = 0          # clip mode: different frames in the clip


@dataclass
class AnswerResult:
    """The answer to a question on one camera's frame."""

    question: object              # the Question
    text: str
    frame: object                 # the Frame the answer is about
    inference_seconds: float


class CaptionWorker:
    """
    Run the captioning off the executor thread.

    ``caption_fn(images, prompt, max_new_tokens, system_prompt=)`` makes
    the captions.

    ``settings`` (a :class:`~camera_caption.pipeline.settings.
    CaptionSettings`) is replaced whole by :meth:`update` and read once per
    batch, so a live change applies to the next batch.  While ``enable`` is
    false no inference runs and held frames are dropped.

    Clip mode (``settings.clip_frames`` N > 1): :meth:`submit` also puts
    ``prepare_fn(image)`` (the backend's ``prepare``) with the frame's stamp
    into its camera's :class:`~camera_caption.pipeline.clip_ring.ClipRing`,
    and each camera's entry in a caption batch is a clip: the list of N
    prepared items sampled over ``clip_seconds`` up to the frame taken.
    """

    def __init__(self, caption_fn, on_caption, on_error, settings,
                 clock=time.monotonic, questions=None, on_answer=None,
                 cancel_fn=None, prepare_fn=None):
        self.slots = LatestFrames()
        self._prepare_fn = prepare_fn or (lambda image: image)
        self._rings = {}               # topic -> ClipRing (clip mode)
        self.questions = questions     # a QuestionQueue, or None
        self._on_answer = on_answer
        self._newest = {}              # topic -> last frame taken
        self._question_turn = False
        self._caption_fn = caption_fn
        self._cancel_fn = cancel_fn    # aborts a caption_fn call under way
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
        self.answers = 0       # questions answered (inference done)
        self.not_captioned = 0  # frames the backend returned None for
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
            'frames_not_captioned': self.not_captioned,
            'frames_received': self.slots.received,
            'frames_dropped': self.slots.dropped,
            'scene_gate_passed': self.gate_passed,
            'scene_gate_skipped': self.gate_skipped,
            'scene_difference_last': max(differences, default=None),
            'dedupe_suppressed': self.dedupe_suppressed,
            'questions_answered': self.answers,
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
        """
        Offer a frame; it replaces its camera's frame not yet captioned.

        In clip mode it is prepared (``prepare_fn``, on the caller's thread)
        and stored in its camera's ring first; an exception from
        ``prepare_fn`` propagates and the frame is not offered.
        """
        settings = self._settings
        if settings.clip_frames > 1:
            ring = self._rings.get(frame.topic)
            if ring is None:
                ring = self._rings[frame.topic] = ClipRing(
                    settings.clip_frames, settings.clip_seconds)
            ring.configure(settings.clip_frames, settings.clip_seconds)
            ring.add(frame.stamp, self._prepare_fn(frame.image))
        elif self._rings:
            self._rings = {}           # stills again: free the rings
        self.slots.put(frame.topic, frame)

    def clip_of(self, frame, settings):
        """Return the clip ((stamp, item) pairs) ending at ``frame``."""
        ring = self._rings.get(frame.topic)
        clip = ring.sample(settings.clip_frames, settings.clip_seconds,
                           until=frame.stamp) if ring is not None else []
        if not clip:     # clip mode switched on after the frame came in
            item = self._prepare_fn(frame.image)
            clip = [(frame.stamp, item)] * settings.clip_frames
        return clip

    def stop(self, timeout=2.0):
        """Stop the thread and wait for it (at most ``timeout`` s)."""
        self._stop.set()
        self.slots.close()
        if self._cancel_fn is not None:
            self._cancel_fn()
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
            caption_due = delay <= 0 and self.slots.waiting()
            if (self._question_turn or not caption_due) and \
                    self._answer_one(settings):
                self._question_turn = False
                continue
            if delay > 0:
                self._stop.wait(min(delay, 0.1))
                continue
            frames = self.slots.take_all(timeout=0.1)
            if not frames:
                continue
            self._newest.update(frames)
            started = self._clock()
            self._throttle.mark(started)
            batch = [f for topic, f in sorted(frames.items())
                     if self._gate(topic).should_caption(f.image)]
            if batch:
                self._caption(batch, started, settings)
                self._question_turn = True

    def _answer_one(self, settings):
        """Answer the oldest question, if any and a frame is there."""
        if self.questions is None or self.questions.peek() is None:
            return False
        frames = dict(self._newest)
        frames.update(self.slots.peek_all())   # newer, not yet captioned
        if not frames:
            return False                       # no frame yet: it waits
        question = self.questions.take()
        batch = [frame for _, frame in sorted(frames.items())]
        started = self._clock()
        try:
            texts = self._caption_fn(
                [frame.image for frame in batch],
                question_prompt(question.text), settings.max_new_tokens,
                system_prompt=settings.system_prompt)
        except Exception as exc:  # noqa: B902 - keep answering
            self.errors += 1
            self._on_error(batch, exc)
            return True
        elapsed = self._clock() - started
        self.answers += 1
        for frame, text in zip(batch, texts):
            if text is not None:       # None: the backend said why
                self._on_answer(AnswerResult(question, text, frame, elapsed))
        return True

    def _caption(self, batch, started, settings):
        clips = [None] * len(batch)
        try:
            if settings.clip_frames > 1:
                clips = [self.clip_of(frame, settings) for frame in batch]
                inputs = [timed_clip(clip, settings) for clip in clips]
            else:
                inputs = [frame.image for frame in batch]
            texts = self._caption_fn(inputs, settings.prompt,
                                     settings.max_new_tokens,
                                     system_prompt=settings.system_prompt)
        except Exception as exc:  # noqa: B902 - keep captioning
            self.errors += 1
            self._on_error(batch, exc)
            return
        elapsed = self._clock() - started
        # None: the backend could not caption that frame and said why.
        done = [(f, t, c) for f, t, c in zip(batch, texts, clips)
                if t is not None]
        self.not_captioned += len(batch) - len(done)
        if not done:
            return
        self.batches += 1
        self.last_batch_size = len(done)
        self.captions += len(done)
        for frame, text, clip in done:
            if not self._deduper(frame.topic).should_publish(text):
                continue
            result = CaptionResult(text, frame, elapsed)
            if clip:
                result.clip_first, result.clip_last = clip[0][0], clip[-1][0]
                result.clip_frames = distinct_count(clip)
            self._on_caption(result)
