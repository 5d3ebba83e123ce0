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
from urllib.parse import urlsplit

from camera_caption.contract.errors import ModelLoadError
from camera_caption.utilities.jpeg import encode_jpeg

# The part of an error body quoted in a log line.
BODY_QUOTE = 200

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

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind


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


def chat_request(model, image_url, prompt, max_new_tokens, system_prompt=''):
    """Return the body of one chat completion request."""
    content = [{'type': 'image_url', 'image_url': {'url': image_url}}]
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
                          f'{body[:BODY_QUOTE]!r}') from None
    if not isinstance(text, str) or not text.strip():
        raise BadResponse(f'empty caption in {body[:BODY_QUOTE]!r}')
    return text.strip()


class Connection:
    """One kept-alive HTTP(S) connection to the server."""

    def __init__(self, scheme, host, port, timeout, context, headers):
        self._args = (scheme, host, port, timeout, context)
        self._headers = headers
        self._conn = None
        self._lock = threading.Lock()

    def request(self, method, path, body=None):
        """Return ``(status, body text)``; raise RequestFailed when unsent."""
        scheme, host, port, timeout, context = self._args
        for attempt in (0, 1):     # a kept-alive connection may be stale
            with self._lock:
                if self._conn is None:
                    self._conn = (http.client.HTTPSConnection(
                        host, port, timeout=timeout, context=context)
                        if scheme == 'https' else http.client.HTTPConnection(
                            host, port, timeout=timeout))
                conn = self._conn
            fresh = conn.sock is None
            try:
                conn.request(method, path, body=body, headers=self._headers)
                response = conn.getresponse()
                text = response.read().decode('utf-8', 'replace')
                return response.status, text
            except (socket.timeout, TimeoutError):
                self.close()
                raise RequestFailed('timeout', f'no answer within {timeout:g}'
                                    ' s (request_timeout_s)') from None
            except ssl.SSLError as exc:
                self.close()
                raise RequestFailed('tls', f'TLS: {exc}') from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if fresh or attempt or isinstance(exc, ConnectionRefusedError):
                    raise RequestFailed(
                        'unreachable', f'{type(exc).__name__}: {exc}'
                        if str(exc) else type(exc).__name__) from None
        raise AssertionError('unreachable')   # pragma: no cover

    def close(self):
        """Close the socket; a request blocked on it fails at once."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            conn.close()


def status_line(status, body, url, params):
    """One line for a non-2xx answer, naming the parameters to check."""
    quoted = ' '.join(body.split())[:BODY_QUOTE]
    names = STATUS_ADVICE.get(status, ())
    advice = ', '.join(f"'{n}' = {params[n]!r}" for n in names
                       if n in params)
    if status in (401, 403):
        advice = "'api_key_env' (the key was refused)"
    return (f'HTTP {status} from {url}: {quoted or "(no body)"}'
            + (f'; check parameter {advice}' if advice else ''))
