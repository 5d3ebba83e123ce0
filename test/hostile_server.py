"""
An OpenAI-compatible server on 127.0.0.1 that misbehaves on purpose.

Standard library only.  ``HostileServer.mode`` picks how it answers
``POST /v1/chat/completions`` (``GET /v1/models`` always lists one model,
unless the mode is about the model list); it can be switched while a
client runs.  It counts the POSTs it received, and stops dripping or
streaming when told to stop.
"""

import http.server
import json
import threading
import time

from serving_helpers import LocalServer

CAPTION = 'a red circle on a white background'
MB = 2**20


def chat_answer(text):
    return json.dumps({'choices': [{'message': {'role': 'assistant',
                                                'content': text}}]})


class HostileServer(LocalServer):
    """``with HostileServer('drip') as server: ... server.endpoint``."""

    def __init__(self, mode='ok'):
        self.mode = mode
        self.posts = 0
        self.stopping = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=()):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's name
                if outer.mode == 'drip_models':
                    return self._drip(chat_answer(CAPTION))
                if outer.mode == 'huge_models':
                    return self._stream(200 * MB, length=True)
                self._send(200, json.dumps(
                    {'data': [{'id': 'tiny', 'object': 'model'}]}))

            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get('Content-Length') or 0)
                self.rfile.read(length)
                outer.posts += 1
                getattr(self, 'mode_' + outer.mode)()

            def mode_ok(self):
                self._send(200, chat_answer(CAPTION))

            def mode_drip(self):
                self._drip(chat_answer(CAPTION))

            def mode_endless(self):
                self._stream(None, length=False)

            def mode_huge(self):
                self._stream(200 * MB, length=True)

            def mode_huge_unannounced(self):
                self._stream(200 * MB, length=False)

            def mode_escape(self):
                self._send(200, chat_answer(
                    '\x1b[2J\x1b[H\x1b[31;1mFAKE-ALERT\x1b]0;pwned\x07 a red '
                    'circle'))

            def mode_newlines(self):
                self._send(200, chat_answer(
                    'a cat\n[ERROR] [1.0] [captioner]: forged\r\nline\x00'
                    'end'))

            def mode_long(self):
                self._send(200, chat_answer('word ' * 200000))   # 1 MB

            def mode_echo_key(self):
                self._send(401, 'invalid key: '
                           + self.headers.get('Authorization', ''))

            def mode_malformed(self):
                self._send(200, 'not json at all \x1b[2J')

            def mode_busy(self):
                self._send(503, 'busy', [('Retry-After', '2')])

            def mode_close_midway(self):
                self.send_response(200)
                self.send_header('Content-Length', '1000')
                self.end_headers()
                self.wfile.write(b'{"choices": [')
                self.wfile.flush()
                self.close_connection = True

            def _drip(self, text):
                data = text.encode()
                self.send_response(200)
                self.send_header('Content-Length', str(len(data) * 1000))
                self.end_headers()
                while not outer.stopping.is_set():
                    try:
                        self.wfile.write(b' ')
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.2)

            def _stream(self, size, length):
                self.send_response(200)
                if length:
                    self.send_header('Content-Length', str(size))
                else:
                    self.send_header('Transfer-Encoding', 'chunked')
                self.end_headers()
                block = b'x' * 65536
                sent = 0
                try:
                    while not outer.stopping.is_set() and (
                            size is None or sent < size):
                        if length:
                            self.wfile.write(block)
                        else:
                            self.wfile.write(b'%x\r\n%s\r\n' % (len(block),
                                                                block))
                        sent += len(block)
                except OSError:
                    pass
                self.close_connection = True

        self._listen(Handler)
        self.endpoint = f'http://127.0.0.1:{self.port}/v1'

    def __exit__(self, *exc):
        self.stopping.set()             # ends the drips and streams first
        super().__exit__(*exc)
