"""
The caption service: frames in, typed captions, answers and events out.

No ROS import.  It owns what captioning needs between the node's
subscriptions and its publishers: the backend (the model), the worker
thread that captions the newest frame of each camera at most ``rate_hz``
times a second, the question queue, the watch patterns, the figures for
``/diagnostics`` and the caption overlay.  Its interface:

* :meth:`load` / :meth:`close`: load and free the backend (configure,
  cleanup);
* :meth:`start` / :meth:`stop`: start and stop the worker (activate,
  deactivate), with the callbacks that get each
  :class:`~camera_caption.service.results.CaptionOut` and
  :class:`~camera_caption.service.results.AnswerOut`;
* :meth:`submit`, :meth:`skip`, :meth:`ask`: a frame, a frame that could
  not be converted, a question;
* :meth:`update`: live parameters changed;
* :meth:`report`: the diagnostics status; :meth:`draw`: the overlay.

Bad input is one rate-limited warning that names the field and value.
Every caption and answer, from any backend, is made safe before it goes
out (:func:`~camera_caption.utilities.safe_text.safe_text`): no control
characters or escape sequences, one line, at most ``max_caption_chars``.
"""

import time

from camera_caption.engine.backend import open_backend
from camera_caption.frames.caption_overlay import CaptionOverlay
from camera_caption.frames.latest_frame import Frame
from camera_caption.pipeline.caption_events import EventMatcher
from camera_caption.pipeline.caption_stats import CaptionerFigures
from camera_caption.pipeline.caption_worker import CaptionWorker
from camera_caption.pipeline.question_queue import QuestionQueue
from camera_caption.pipeline.settings import CaptionSettings
from camera_caption.service.results import AnswerOut, CaptionOut
from camera_caption.utilities.safe_text import safe_text
from camera_caption.utilities.throttles import LogThrottle

# Longest question taken, in characters (longer ones are cut).
QUESTION_CHARS = 1000


class CaptionService:
    """Caption the newest frame of each camera; say what came of it."""

    def __init__(self, params, topics, log, backend=None, clock=time.time):
        """
        Take the captioner's parameter values and its cameras.

        ``params`` is the node's (live) parameter dict, ``topics`` the
        image topics (keys of every per-camera figure), ``log`` has
        ``info`` and ``warning``.  ``backend`` is used instead of opening
        the one the parameters name, and is not closed: the caller owns
        it.  ``clock()`` gives the time that image stamps are in.
        """
        self.params = params
        self.topics = list(topics)
        self.log = log
        self.clock = clock
        self.settings = CaptionSettings.from_values(params)
        self.figures = CaptionerFigures(self.topics)
        self.events = EventMatcher(params['watch'], params['event_holdoff_s'])
        self.questions = QuestionQueue(params['question_queue_size'])
        self.overlay = CaptionOverlay(log.warning)
        self.warn = LogThrottle(5.0).bound(log.warning)
        self._given_backend = backend
        self.backend = None
        self.worker = None          # kept once stopped: figures stay
        self._running = False
        self._camera_name = str

    # -- lifecycle -----------------------------------------------------

    def load(self):
        """Open the backend (load the model); raises with one line."""
        self.backend = self._given_backend or open_backend(
            self.params, len(self.topics), self.log)
        return self.backend.describe()

    def start(self, on_caption, on_answer, camera_name=str):
        """
        Start captioning: results go to ``on_caption`` and ``on_answer``.

        ``camera_name(topic)`` is a camera's full topic name, as shown in
        the JSON of captions, answers and events.
        """
        self._camera_name = camera_name
        self._on_caption, self._on_answer = on_caption, on_answer
        backend = self.backend
        self.worker = CaptionWorker(
            backend.caption, self._captioned, self._failed, self.settings,
            questions=self.questions, on_answer=self._answered,
            cancel_fn=backend.cancel, prepare_fn=backend.prepare)
        self.worker.start()
        self._running = True

    def stop(self):
        """Stop captioning; the model stays loaded."""
        self._running = False
        if self.worker is not None:
            self.worker.stop()

    def close(self):
        """Stop, and free the backend (GPU memory included)."""
        self.stop()
        backend, self.backend = self.backend, None
        if backend is not None and backend is not self._given_backend:
            backend.close()

    @property
    def running(self):
        """Whether frames are being captioned."""
        return self._running

    # -- in --------------------------------------------------------------

    def submit(self, topic, image, stamp, frame_id='', header=None):
        """Hand over a camera's newest frame (RGB); older ones drop."""
        worker = self.worker
        if worker is None or not self._running:
            return                          # stopped meanwhile
        self.figures.frame_in(topic)
        try:
            worker.submit(Frame(image, stamp, frame_id, topic, header))
        except Exception as exc:  # noqa: B902 - prepare() failed: skip it
            self.figures.frame_skipped()
            self.warn(('prepare', type(exc).__name__), 'frame skipped, '
                      f'clip preparation failed: {type(exc).__name__}: '
                      f'{exc}')

    def skip(self, error):
        """Count a frame that could not be converted; say why (throttled)."""
        self.figures.frame_skipped()
        self.warn(error.key, f'frame skipped: {error}')

    def ask(self, text):
        """Queue a question about the live view (refused ones are said)."""
        question = safe_text(text, QUESTION_CHARS)
        if not question:
            self.warn('question', f"question ignored: field 'data' = "
                      f'{text!r} is empty')
            return
        if self.questions.put(question) is None:
            self.warn('question_overflow', 'question dropped: '
                      f'{self.questions.size} already waiting '
                      f'(question_queue_size): {question!r}')

    def update(self, names):
        """Take the parameters ``names`` that changed (live)."""
        names = set(names)
        if names & set(CaptionSettings.names()):
            self.settings = CaptionSettings.from_values(self.params)
            if self.worker is not None:
                self.worker.update(self.settings)
        if names & {'watch', 'event_holdoff_s'}:
            self.events.update(self.params['watch'],
                               self.params['event_holdoff_s'])

    # -- out -------------------------------------------------------------

    def _safe(self, text):
        return safe_text(text, self.params['max_caption_chars'])

    def _captioned(self, result):
        if not self._running:
            return          # finished after stop(): not published, not counted
        frame = result.frame
        latency = self.clock() - frame.stamp    # from the image's stamp
        self.figures.caption_out(latency, result.inference_seconds)
        camera = self._camera_name(frame.topic)
        text = self._safe(result.text)
        out = CaptionOut(
            frame.topic, camera, text, frame, result.inference_seconds,
            latency, result.clip_first, result.clip_last, result.clip_frames,
            self.events.match(frame.topic, text, time.monotonic()),
            self._path(bool(result.clip_frames)))
        for pattern in out.events:
            self.log.info(f'caption_event {pattern!r} on {camera}: {text}')
        self._on_caption(out)

    def _path(self, clip):
        backend = self.backend
        return backend.path(clip) if backend is not None else {}

    def _answered(self, result):
        if not self._running:
            return
        frame, question = result.frame, result.question
        self._on_answer(AnswerOut(
            frame.topic, self._camera_name(frame.topic), question.text,
            question.number, self._safe(result.text), frame,
            result.inference_seconds,
            time.monotonic() - question.received))

    def _failed(self, batch, exc):
        self.warn(('inference', type(exc).__name__),
                  f'caption failed, batch of {len(batch)} frame(s) '
                  f'skipped: {type(exc).__name__}: {exc}')

    def draw(self, out):
        """Return the caption's frame with the caption drawn on it (RGB)."""
        return self.overlay.render(out.frame.image, out.text)

    def report(self, routes):
        """
        Return ``(warning, summary, values)`` for ``/diagnostics``.

        ``routes``: one dict per image topic (see
        :meth:`~camera_caption.pipeline.caption_stats.CaptionerFigures.
        report`).  ``warning`` is '' when all is well.
        """
        worker = self.worker
        warning, summary, values = self.figures.report(
            self.settings, self.params['latency_warn_s'], worker.stats(),
            self.backend.stats(), self.backend.problem(), routes)
        values.update(
            questions_total=self.questions.asked,
            questions_dropped=self.questions.dropped,
            questions_answered=worker.answers,
            questions_waiting=len(self.questions),
            events_total=self.events.events,
            events_held_off=self.events.held_off,
            watch=','.join(self.events.patterns))
        return warning, summary, values
