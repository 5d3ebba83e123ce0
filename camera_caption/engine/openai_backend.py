"""
The openai backend: frames sent to an OpenAI-compatible serving engine.

No ROS import, and nothing beyond the standard library and OpenCV: vLLM,
SGLang, TGI, Ollama and ``transformers serve`` all answer
``POST /v1/chat/completions`` with an image as an ``image_url`` part (a
``data:image/jpeg;base64,...`` URL).  Each frame is resized to at most
``image_max_side`` pixels, JPEG-encoded and sent with the prompt,
``max_tokens`` and temperature 0 (greedy, as the local backend).  A clip
(``clip_frames`` > 1) goes as its N frames, oldest first, as N images in
the one user message; ``system_prompt``, when set, is the system message.

A batch (one frame per camera) goes out concurrently on at most
``max_in_flight`` kept-alive connections, and :meth:`caption` returns when
every frame is answered or failed, so the worker goes on holding only the
newest frame per camera: a slow server lowers the caption rate, it never
builds a backlog.  A frame that could not be captioned comes back as
``None``.

Faults: a server that cannot be reached, does not answer within
``request_timeout_s`` or answers with an error status makes the backend
*down*: one warning, then retries with a back-off (0.5 s doubling up to
``retry_max_s``) during which frames are dropped unsent, and one line on
recovery.  :meth:`problem` says why meanwhile (``/diagnostics`` WARN).  A
4xx names the parameter to fix.  The API key is read from the environment
variable that ``api_key_env`` names and is never logged.
"""

import json
import os
import queue
import ssl
import threading
import time

from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.backend import CaptionBackend
from camera_caption.engine.openai_protocol import (BadResponse, BODY_QUOTE,
                                                   caption_of, chat_request,
                                                   Connection, encode_frame,
                                                   MAX_MODELS_BYTES,
                                                   parse_endpoint,
                                                   RequestFailed,
                                                   status_line)
from camera_caption.utilities.safe_text import safe_text
from camera_caption.utilities.throttles import LogThrottle

RETRY_INITIAL_S = 0.5


class _Job:
    """One frame's request and its outcome."""

    def __init__(self, body):
        self.body = body
        self.text = None
        self.error = None
        self.done = threading.Event()


class OpenAIBackend(CaptionBackend):
    """Caption through an OpenAI-compatible ``/v1/chat/completions``."""

    def __init__(self, endpoint, model, connect, max_in_flight,
                 image_max_side=512, jpeg_quality=90, retry_max_s=10.0,
                 log=None):
        self.endpoint = endpoint
        self.model = model
        self.max_in_flight = max_in_flight
        self.image_max_side = image_max_side
        self.jpeg_quality = jpeg_quality
        self.retry_max_s = retry_max_s
        self._base_path = parse_endpoint(endpoint)[3]
        self._log = log
        self._say = LogThrottle(5.0).bound(log.warning)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._generation = 0        # cancel() counts up: caption() returns
        self._jobs = queue.Queue()
        self._connections = [connect() for _ in range(max_in_flight)]
        self._senders = [threading.Thread(
            target=self._send_loop, args=(conn,), daemon=True,
            name=f'openai_sender_{i}')
            for i, conn in enumerate(self._connections)]
        for thread in self._senders:
            thread.start()
        # Outage state, read by problem() from the diagnostics thread.
        self._down_since = None
        self._down_kind = ''
        self._down_reason = ''
        self._retry_delay = RETRY_INITIAL_S
        self._next_try = 0.0
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests_ok = 0
        self.requests_failed = 0
        self.bad_responses = 0
        self.frames_dropped_while_down = 0
        self.outages = 0
        self.last_request_ms = None

    # -- start ---------------------------------------------------------

    @classmethod
    def create(cls, params, max_batch, log):
        """Reach the server, check the model; raise ModelLoadError if not."""
        endpoint = params['endpoint'].strip().rstrip('/')
        if not endpoint:
            raise ModelLoadError(
                "parameter 'endpoint' = '' is invalid: backend openai needs "
                'the base URL of the server, e.g. http://gpu-server:8000/v1')
        scheme, host, port, base = parse_endpoint(endpoint)
        headers = {'Content-Type': 'application/json',
                   'Accept': 'application/json'}
        key_env = params['api_key_env'].strip()
        key = ''
        if key_env:
            key = os.environ.get(key_env, '')
            if not key:
                raise ModelLoadError(
                    f"parameter 'api_key_env' = {key_env!r}: the "
                    'environment variable is not set or empty')
            headers['Authorization'] = f'Bearer {key}'
        context = None
        if scheme == 'https':
            ca_file = params['ca_file'].strip()
            try:
                context = ssl.create_default_context(
                    cafile=ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise ModelLoadError(
                    f"parameter 'ca_file' = {ca_file!r} cannot be read: "
                    f'{exc}') from None
        timeout = params['request_timeout_s']

        def connect():
            return Connection(scheme, host, port, timeout, context, headers,
                              secrets=(key,))

        model = cls._check_model(endpoint, base, connect(), params, log)
        backend = cls(endpoint, model, connect, params['max_in_flight'],
                      params['image_max_side'], params['jpeg_quality'],
                      params['retry_max_s'], log)
        log.info(f"remote model '{model}' at {endpoint} (up to "
                 f'{backend.max_in_flight} requests in flight, frames '
                 f'<= {backend.image_max_side or "full"} px, JPEG '
                 f'{backend.jpeg_quality})')
        frames = params.get('clip_frames', 1)
        if frames > 1:
            log.info(f'clips go as {frames} images in one message: the '
                     'served model must take several images (chat VLMs '
                     'do; BLIP-2 takes one: set clip_frames 1 there)')
        return backend

    @staticmethod
    def _check_model(endpoint, base, conn, params, log):
        """Ask ``/models`` which models are served; return the one to use."""
        try:
            status, body, _ = conn.request('GET', base + '/models',
                                           limit=MAX_MODELS_BYTES)
        except RequestFailed as exc:
            hint = " (is 'ca_file' set to the server's CA?)" \
                if exc.kind == 'tls' else ''
            raise ModelLoadError(
                f"parameter 'endpoint' = {endpoint!r}: cannot reach the "
                f'server: {exc}{hint}') from None
        finally:
            conn.close()
        if status // 100 != 2:
            raise ModelLoadError(status_line(
                status, body, endpoint + '/models', {
                    'endpoint': endpoint,
                    'api_key_env': params['api_key_env']}))
        try:
            served = [safe_text(m['id'], 200)
                      for m in json.loads(body)['data']]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadError(
                f"parameter 'endpoint' = {endpoint!r}: {endpoint}/models "
                f'did not answer a model list: '
                f'{safe_text(body, BODY_QUOTE)!r}') from None
        wanted = params['remote_model'].strip()
        if not wanted:
            if len(served) != 1:
                raise ModelLoadError(
                    f"parameter 'remote_model' = '': the server serves "
                    f'{len(served)} models, name one of: '
                    + ', '.join(served))
            return served[0]
        if wanted not in served:
            raise ModelLoadError(
                f"parameter 'remote_model' = {wanted!r} is not served at "
                f'{endpoint}; it serves: ' + (', '.join(served) or 'nothing'))
        return wanted

    # -- captioning ----------------------------------------------------

    def caption(self, frames, prompt, max_new_tokens, system_prompt=''):
        """Send every frame at once (<= max_in_flight); None where failed."""
        if not frames:
            return []
        now = time.monotonic()
        with self._lock:
            waiting = self._down_since is not None and now < self._next_try
            if waiting:
                self.frames_dropped_while_down += len(frames)
        generation = self._generation
        if waiting or self._closed.is_set():
            return [None] * len(frames)
        jobs = []
        for item in frames:         # a still, or a clip: N images, in order
            images = item if isinstance(item, (list, tuple)) else [item]
            urls = [encode_frame(image, self.image_max_side,
                                 self.jpeg_quality) for image in images]
            job = _Job(json.dumps(chat_request(
                self.model, urls, prompt, max_new_tokens, system_prompt)))
            jobs.append(job)
            self._jobs.put(job)
        for job in jobs:
            while not job.done.wait(0.05):
                if self._closed.is_set() or generation != self._generation:
                    return [None] * len(frames)     # stopped: not counted
        if self._closed.is_set() or generation != self._generation:
            return [None] * len(frames)  # failed because it was stopped
        self._account(jobs)
        return [job.text for job in jobs]

    def _send_loop(self, conn):
        while not self._closed.is_set():
            job = self._jobs.get()
            if job is None:
                break
            with self._lock:
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            started = time.monotonic()
            try:
                job.text = self._post(conn, job.body)
            except (RequestFailed, BadResponse) as exc:
                job.error = exc
            except Exception as exc:  # noqa: B902 - reported, never fatal
                job.error = RequestFailed('error', f'{type(exc).__name__}: '
                                          f'{exc}')
            finally:
                with self._lock:
                    self.in_flight -= 1
                    self.last_request_ms = round(
                        (time.monotonic() - started) * 1000, 1)
                job.done.set()

    def _post(self, conn, body):
        status, text, retry_after = conn.request(
            'POST', self._base_path + '/chat/completions', body)
        if status // 100 != 2:
            raise RequestFailed(f'http {status}', status_line(
                status, text, self.endpoint + '/chat/completions',
                {'remote_model': self.model,
                 'image_max_side': self.image_max_side,
                 'jpeg_quality': self.jpeg_quality}), retry_after)
        return caption_of(text)

    def _account(self, jobs):
        """Count the answers; enter or leave the outage state."""
        if self._closed.is_set():
            return                  # shutting down: nothing to report
        failures = [j.error for j in jobs if isinstance(j.error,
                                                        RequestFailed)]
        bad = [j.error for j in jobs if isinstance(j.error, BadResponse)]
        answered = len(jobs) - len(failures) - len(bad)
        malformed = len(bad)
        if not answered and not failures and bad:
            # Only malformed answers: the server is not captioning either.
            failures = [RequestFailed('bad answer', str(bad[0]))]
            bad = []
        now = time.monotonic()
        with self._lock:
            self.requests_ok += answered
            self.requests_failed += len(jobs) - answered - malformed
            self.bad_responses += malformed
            was_down = self._down_since
            if answered:
                self._down_since = None
                self._down_kind = self._down_reason = ''
                self._retry_delay = RETRY_INITIAL_S
            elif failures:
                first = failures[0]
                new_kind = first.kind != self._down_kind
                if was_down is None:
                    self._down_since = now
                    self.outages += 1
                self._down_kind, self._down_reason = first.kind, str(first)
                wait = self._retry_delay
                if first.retry_after is not None:   # as the server asks
                    wait = max(wait, min(first.retry_after,
                                         self.retry_max_s))
                self._next_try = now + wait
                self._retry_delay = min(self._retry_delay * 2,
                                        self.retry_max_s)
        if answered and was_down is not None:
            self._log.info(f'server at {self.endpoint} answers again after '
                           f'{now - was_down:.1f} s; captioning')
        if not answered and failures:
            if was_down is None or new_kind:    # once per outage (or cause)
                self._log.warning(
                    f'server at {self.endpoint} failed: {first}; frames are '
                    f'dropped while retrying (back-off up to '
                    f'{self.retry_max_s:g} s)')
        elif failures:                  # some answered, some did not
            self._say(failures[0].kind, f'request to {self.endpoint} '
                      f'failed, frame skipped: {failures[0]}')
        for error in bad:
            self._say('bad', f'answer from {self.endpoint} skipped: {error}')

    # -- reporting -----------------------------------------------------

    def path(self, clip):
        """Say a clip goes as N images; the server's model type is unknown."""
        return dict(super().path(clip), model=self.model or '',
                    family='openai', engine='openai')

    def describe(self):
        """Say which model answers where."""
        return f'{self.model} at {self.endpoint} (openai)'

    def stats(self):
        """Endpoint, model, requests and outage figures (never the key)."""
        with self._lock:
            return {
                'backend': 'openai', 'endpoint': self.endpoint,
                'model': self.model, 'max_in_flight': self.max_in_flight,
                'in_flight': self.in_flight,
                'in_flight_most': self.most_in_flight,
                'requests_ok': self.requests_ok,
                'requests_failed': self.requests_failed,
                'bad_responses': self.bad_responses,
                'frames_dropped_while_down': self.frames_dropped_while_down,
                'outages': self.outages,
                'request_ms_last': self.last_request_ms,
                'server': 'down' if self._down_since is not None else 'up',
            }

    def problem(self):
        """Say why the server is not captioning ('' when it is)."""
        with self._lock:
            if self._down_since is None:
                return ''
            return (f'server at {self.endpoint} failing for '
                    f'{time.monotonic() - self._down_since:.0f} s: '
                    f'{self._down_reason}')

    def cancel(self):
        """Abort the requests in flight; caption() returns at once."""
        self._generation += 1
        while True:            # frames not sent yet are dropped
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:    # close() asked the senders to stop
                self._jobs.put(None)
                break
            job.done.set()
        for conn in self._connections:
            conn.close()       # the next request opens a new connection

    def close(self):
        """Abort requests in flight and stop the sender threads."""
        self._closed.set()
        for conn in self._connections:
            conn.close()
        for _ in self._senders:
            self._jobs.put(None)
