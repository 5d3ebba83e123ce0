"""
A real ``transformers serve`` for the openai backend's tests, and a raw one.

``tiny_server`` is a real server on 127.0.0.1 (a free port) serving the
readable tiny BLIP-2; a test that kills or pauses it leaves it running
again.  ``RawServer`` answers every request with one fixed status and body,
for the faults that a real server cannot be made to show on demand
(malformed answers, 401, vLLM's 404); it records what it received.
"""

import http.server
import json
import logging
import threading

from camera_caption.tools.tiny_server import (build_readable_tiny_blip2,
                                              TinyServer)
import pytest


@pytest.fixture(scope='session')
def served_model_dir(tmp_path_factory):
    """Save the readable tiny BLIP-2 once per session."""
    return build_readable_tiny_blip2(
        str(tmp_path_factory.mktemp('served_blip2')))


@pytest.fixture(scope='module')
def tiny_server(served_model_dir, tmp_path_factory):
    """Run ``transformers serve`` for a module's tests."""
    log = tmp_path_factory.mktemp('serve_log') / 'serve.log'
    server = TinyServer(served_model_dir, log_path=str(log)).start()
    yield server
    server.kill()


def ensure_running(server):
    """Resume a paused server, restart a killed one."""
    if server.process.poll() is None:
        server.resume()
    else:
        server.start()


def backend_params(endpoint, **changes):
    """Return the captioner parameters the openai backend reads."""
    values = {'endpoint': endpoint, 'remote_model': '', 'api_key_env': '',
              'ca_file': '', 'request_timeout_s': 5.0, 'max_in_flight': 4,
              'image_max_side': 512, 'jpeg_quality': 90, 'retry_max_s': 1.0}
    values.update(changes)
    return values


class ListLog:
    """A ``log`` for create() that keeps its lines."""

    def __init__(self):
        self.lines = []
        self._lock = threading.Lock()

    def _add(self, level, text):
        with self._lock:
            self.lines.append((level, text))
        logging.getLogger('openai_backend').info(text)

    def info(self, text):
        self._add('info', text)

    def warning(self, text):
        self._add('warning', text)

    def matching(self, level, part):
        """Lines of ``level`` that contain ``part``."""
        with self._lock:
            return [t for lv, t in self.lines if lv == level and part in t]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 (a free port), run in ``with``."""

    def _listen(self, handler, ssl_context=None):
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     handler)
        self.httpd.daemon_threads = True
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(
                self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class RawServer(LocalServer):
    """An HTTP server on 127.0.0.1 that answers ``answers[path]`` verbatim."""

    def __init__(self, answers, ssl_context=None):
        self.answers = answers       # path -> (status, content type, body)
        self.requests = []           # (method, path, headers, body)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):

            def _answer(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                outer.requests.append((self.command, self.path,
                                       dict(self.headers), body))
                status, kind, text = outer.answers.get(
                    self.path, (404, 'text/plain', 'no such path'))
                data = text.encode()
                self.send_response(status)
                self.send_header('Content-Type', kind)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self._listen(Handler, ssl_context)


def models_answer(*ids):
    """Return a ``/v1/models`` answer listing ``ids``."""
    return (200, 'application/json', json.dumps(
        {'object': 'list', 'data': [{'id': i, 'object': 'model'}
                                    for i in ids]}))
