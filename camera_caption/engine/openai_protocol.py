"""
The OpenAI-compatible HTTP protocol: endpoints, requests, answers, errors.

Standard library and OpenCV only, no ROS import: the endpoint URL parsed
and checked, a frame as a JPEG ``data:`` URL, the
``/v1/chat/completions`` request body, the caption taken out of an answer
(:class:`BadResponse` when it is not one), a kept-alive
:class:`Connection` whose requests fail as :class:`RequestFailed` with the
kind of failure, and the one line that says what an error status means.
"""

import base64
import http.client
import json
import socket
import ssl
import threading
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from camera_caption.contract.errors import ModelLoadError
from camera_caption.utilities.jpeg import encode_jpeg
from camera_caption.utilities.safe_text import mask, safe_text

# The part of an error body quoted in a log line.
BODY_QUOTE = 200
# Largest answers read, in bytes: a chat completion, the model list.
MAX_ANSWER_BYTES = 4 * 2**20
MAX_MODELS_BYTES = 2**20
# A kept-alive connection idle this long (s) is opened anew before a request.
IDLE_REOPEN_S = 2.0

# HTTP status -> the parameters that usually cause it.
STATUS_ADVICE = {
    400: ('remote_model', 'image_max_side'),
    401: ('api_key_env',),
    403: ('api_key_env',),
    404: ('remote_model', 'endpoint'),    # vLLM: unknown model
    413: ('image_max_side', 'jpeg_quality'),
}


class RequestFailed(Exception):
    """One request failed; ``kind`` groups failures for the log."""

    def __init__(self, kind, reason, retry_after=None):
        super().__init__(reason)
        self.kind = kind
        self.retry_after = retry_after    # seconds the server asked for


class BadResponse(Exception):
    """A 2xx answer without a caption in it."""


def parse_endpoint(endpoint):
    """Return ``(scheme, host, port, base_path)`` or raise ModelLoadError."""
    parts = urlsplit(str(endpoint).strip())
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise ModelLoadError(
            f"parameter 'endpoint' = {endpoint!r} is invalid: must be a "
            'base URL such as http://gpu-server:8000/v1 (http:// or '
            'https://)')
    if parts.username is not None or parts.password is not None:
        shown = str(endpoint).strip().replace(
            parts.netloc, '***@' + parts.netloc.rpartition('@')[2])
        raise ModelLoadError(
            f"parameter 'endpoint' = {shown!r} is invalid: credentials in "
            'the URL are not sent; put the API key in an environment '
            "variable and name it in 'api_key_env'")
    try:
        port = parts.port or (443 if parts.scheme == 'https' else 80)
    except ValueError:
        raise ModelLoadError(f"parameter 'endpoint' = {endpoint!r} is "
                             'invalid: bad port') from None
    return parts.scheme, parts.hostname, port, parts.path.rstrip('/')


def encode_frame(image, max_side, quality):
    """Return an RGB frame as a JPEG ``data:`` URL, at most ``max_side``."""
    data = encode_jpeg(image, quality, max_side=max_side)
    if data is None:
        raise ValueError('JPEG encoding failed')
    return 'data:image/jpeg;base64,' + base64.b64encode(data).decode('ascii')


def chat_request(model, image_urls, prompt, max_new_tokens,
                 system_prompt=''):
    """
    Return the body of one chat completion request.

    ``image_urls``: one image (a still) or a clip's frames, oldest first,
    all in the one user message.
    """
    content = [{'type': 'image_url', 'image_url': {'url': url}}
               for url in image_urls]
    if prompt:
        content.append({'type': 'text', 'text': prompt})
    messages = [{'role': 'user', 'content': content}]
    if system_prompt:
        messages.insert(0, {'role': 'system', 'content': system_prompt})
    return {'model': model, 'max_tokens': int(max_new_tokens),
            'temperature': 0, 'stream': False, 'messages': messages}


def caption_of(body):
    """Return the caption in a chat completion answer or raise BadResponse."""
    try:
        answer = json.loads(body)
        text = answer['choices'][0]['message']['content']
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BadResponse(f'malformed answer ({type(exc).__name__}): '
                          f'{safe_text(body, BODY_QUOTE)!r}') from None
    if not isinstance(text, str) or not text.strip():
        raise BadResponse(f'empty caption in {safe_text(body, BODY_QUOTE)!r}')
    return text.strip()


class Answer(NamedTuple):
    """A server's answer: status, body text (secrets masked), Retry-After."""

    status: int
    text: str
    retry_after: float = None


class Connection:
    """
    One kept-alive HTTP(S) connection to the server.

    Every exchange is bounded: ``timeout`` covers it whole (connect, send,
    the answer's headers and body), however slowly the server drips, and
    an answer larger than its ``limit`` is refused unread.  A POST is never
    sent twice; a connection idle for :data:`IDLE_REOPEN_S` is opened anew
    first, so that a server's keep-alive timeout does not fail a frame.
    ``secrets`` (the API key) are masked in every answer.
    """

    def __init__(self, scheme, host, port, timeout, context, headers,
                 secrets=()):
        self._args = (scheme, host, port, timeout, context)
        self._headers = headers
        self._secrets = tuple(s for s in secrets if s)
        self._conn = None
        self._last_used = 0.0
        self._lock = threading.Lock()

    def _connection(self):
        scheme, host, port, timeout, context = self._args
        with self._lock:
            if self._conn is not None and \
                    time.monotonic() - self._last_used > IDLE_REOPEN_S:
                _shut(self._conn)
                self._conn = None
            if self._conn is None:
                self._conn = (http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=context)
                    if scheme == 'https' else http.client.HTTPConnection(
                        host, port, timeout=timeout))
            return self._conn

    def request(self, method, path, body=None, limit=MAX_ANSWER_BYTES):
        """Return an :class:`Answer`; raise RequestFailed if there is none."""
        timeout = self._args[3]
        for attempt in (0, 1):     # a kept-alive connection may be stale
            conn = self._connection()
            fresh = conn.sock is None
            expired = threading.Event()

            def expire(conn=conn, expired=expired):
                expired.set()
                _shut(conn)        # the blocked read fails at once
            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
            try:
                conn.request(method, path, body=body, headers=self._headers)
                response = conn.getresponse()
                text = _read(response, limit)
                if expired.is_set():
                    raise TimeoutError
                self._last_used = time.monotonic()
                return Answer(response.status, mask(text, *self._secrets),
                              _seconds(response.getheader('Retry-After')))
            except RequestFailed:
                self.close()
                if expired.is_set():
                    raise RequestFailed(
                        'timeout', f'no complete answer within {timeout:g} '
                        's (request_timeout_s)') from None
                raise
            except Exception as exc:  # noqa: B902 - any fault: one kind
                self.close()
                if expired.is_set() or isinstance(exc, (socket.timeout,
                                                        TimeoutError)):
                    raise RequestFailed(
                        'timeout', f'no complete answer within {timeout:g} '
                        's (request_timeout_s)') from None
                if isinstance(exc, ssl.SSLError):
                    raise RequestFailed('tls', f'TLS: {exc}') from None
                if not isinstance(exc, (OSError, http.client.HTTPException,
                                        AttributeError, ValueError)):
                    raise
                # Only a GET that found its kept-alive connection closed is
                # sent again: a POST may have been taken already.
                if method != 'GET' or fresh or attempt or isinstance(
                        exc, ConnectionRefusedError):
                    reason = mask(f'{type(exc).__name__}: {exc}'
                                  if str(exc) else type(exc).__name__,
                                  *self._secrets)
                    raise RequestFailed('unreachable',
                                        safe_text(reason, BODY_QUOTE)) \
                        from None
            finally:
                timer.cancel()
        raise AssertionError('unreachable')   # pragma: no cover

    def close(self):
        """Close the socket; a request blocked on it fails at once."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            _shut(conn)


def _shut(conn):
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()


def _read(response, limit):
    """Return the body as text; RequestFailed when it exceeds ``limit``."""
    length = response.getheader('Content-Length')
    if length is not None and length.strip().isdigit() and \
            int(length) > limit:
        raise RequestFailed('too large', f'answer of {int(length)} bytes, '
                            f'more than the {limit} read')
    chunks, size = [], 0
    while True:
        chunk = response.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise RequestFailed('too large', f'answer of more than {limit} '
                                'bytes, not read further')
    if response.length:       # Content-Length promised more than came
        raise RequestFailed('incomplete', f'answer cut short after {size} '
                            'bytes')
    return b''.join(chunks).decode('utf-8', 'replace')


def _seconds(value):
    """Return a Retry-After header in seconds (None if absent or a date)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def status_line(status, body, url, params):
    """One line for a non-2xx answer, naming the parameters to check."""
    quoted = safe_text(body, BODY_QUOTE)
    names = STATUS_ADVICE.get(status, ())
    advice = ', '.join(f"'{n}' = {params[n]!r}" for n in names
                       if n in params)
    if status in (401, 403):
        advice = "'api_key_env' (the key was refused)"
    return (f'HTTP {status} from {url}: {quoted or "(no body)"}'
            + (f'; check parameter {advice}' if advice else ''))
