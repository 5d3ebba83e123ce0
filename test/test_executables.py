"""The executables as users run them: real processes, signals, exit codes."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from ros_helpers import CaptionListener, spinning

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(args, **env_changes):
    """Start ``python ARGS``; ``env_changes`` set (or, with None, unset)."""
    path = ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=path)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.parametrize('sig,dtype', [(signal.SIGINT, 'float32'),
                                       (signal.SIGTERM, 'float16')])
def test_one_process_pipeline_captions_and_exits_cleanly(
        ros_context, tiny_model_dir, sig, dtype, tmp_path):
    proc = start(['-m', 'camera_caption', '--source', 'test_pattern',
                  '--model', tiny_model_dir, '--rate_hz', '4',
                  '--max_new_tokens', '4', '--namespace', 'robot1',
                  '--dtype', dtype, '--memory', 'true'],
                 ROS_HOME=str(tmp_path))
    probe = rclpy.create_node('probe', context=ros_context)
    captions = CaptionListener(probe, '/robot1/caption')
    try:
        with spinning(ros_context, probe):
            got = captions.wait_for(3, timeout=60)
    finally:
        sent = time.monotonic()
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=10)
    assert got, output
    assert time.monotonic() - sent < 2.5
    assert proc.returncode == 0, output
    assert 'Traceback' not in output, output
    assert 'robot1.caption_logger]: caption: ' in output
    assert 'model ready' in output and f'on cpu ({dtype})' in output
    assert 'fast path ready' in output, output
    from camera_caption.memory.recall_query import RecallQuery
    from camera_caption.memory.sqlite_store import SQLiteStore
    store = SQLiteStore(str(tmp_path / 'camera_caption' / 'memory.db'))
    stored = store.recall(RecallQuery(camera='/robot1/image_raw'))
    store.close()
    assert stored and all(m.model == tiny_model_dir for m in stored), output


@pytest.mark.parametrize('module,args,expected', [
    ('camera_caption.nodes.captioner_node', ['-p', 'model:=/nonexistent/blip2'],
     "model directory '/nonexistent/blip2' does not exist"),
    ('camera_caption.nodes.captioner_node', ['-p', 'rate_hz:=0.0'],
     "parameter 'rate_hz' = 0.0 is invalid: must be > 0"),
    ('camera_caption.nodes.captioner_node', ['-p', 'reliability:=sometimes'],
     "parameter 'reliability' = 'sometimes' is invalid"),
    ('camera_caption.nodes.captioner_node', ['-p', 'dtype:=int3'],
     "parameter 'dtype' = 'int3' is invalid"),
    ('camera_caption.nodes.camera_node', ['-p', 'source:=/nonexistent/clip.mp4'],
     "video file '/nonexistent/clip.mp4' does not exist"),
    ('camera_caption.nodes.camera_node', ['-p', 'encoding:=mono8'],
     "parameter 'encoding' = 'mono8' is invalid"),
    ('camera_caption.nodes.camera_node', ['-p', 'source:=7'],
     'camera device 7 (/dev/video7) does not exist; '),
    ('camera_caption.nodes.camera_node', ['-p', 'camera_info_url:=/no/cam.yaml'],
     "parameter 'camera_info_url' = '/no/cam.yaml' is invalid"),
])
def test_start_up_errors_are_one_clear_line_and_exit_1(module, args,
                                                       expected):
    proc = start(['-m', module, '--ros-args'] + args)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert expected in output, output
    assert 'Traceback' not in output, output
    assert '[ WARN' not in output, output      # no OpenCV noise
    node = 'captioner' if module.endswith('captioner_node') else 'camera'
    fatal = [line for line in output.splitlines() if 'FATAL' in line]
    assert len(fatal) == 1 and f'[{node}]: ' in fatal[0], output


def test_one_process_entry_point_errors_speak_its_own_syntax(tiny_model_dir):
    proc = start(['-m', 'camera_caption', '--rate_hz', '-1'])
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert output.strip() == \
        "parameter 'rate_hz' = -1 is invalid: must be > 0", output
    proc = start(['-m', 'camera_caption', '--source', 'test_pattern',
                  '--model', tiny_model_dir, '--device', 'cuda'])
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert 'Use --device auto or --device cpu' in output, output
    assert ':=' not in output and 'Traceback' not in output, output


def test_one_process_help_shows_every_launch_argument_and_real_defaults():
    proc = start(['-m', 'camera_caption', '--help'])
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    from camera_caption.contract.launch_arguments import LAUNCH_ARGUMENTS
    for arg in LAUNCH_ARGUMENTS:
        assert f'--{arg.name} ' in output, arg.name
    flat = ' '.join(output.split())
    assert '(default: 1.0, from params_file)' in flat       # rate_hz
    assert '(default: 0.0, from params_file)' in flat       # fps


def wait_for_line(proc, text, timeout):
    """Read the process output until a line holds ``text``; return lines."""
    import selectors
    lines = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if text in line:
                return lines
    raise AssertionError(f'{text!r} not seen in {timeout} s:\n'
                         + ''.join(lines))


@pytest.mark.parametrize('module,args,ready', [
    ('camera_caption.nodes.camera_node', ['-p', 'source:=test_pattern'],
     'publishing test_pattern'),
    ('camera_caption.nodes.captioner_node', ['-p', 'device:=cpu'], 'captioning'),
    ('camera_caption.nodes.caption_logger_node', [], 'logging captions of'),
    ('camera_caption.nodes.caption_memory_node', [], 'storing captions in'),
])
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_each_node_exits_within_2_s_on_signal(tiny_model_dir, module, args,
                                              ready, sig, tmp_path):
    if module.endswith('captioner_node'):
        args = args + ['-p', f'model:={tiny_model_dir}']
    if module.endswith('memory_node'):
        args = args + ['-p', f'memory_path:={tmp_path / "memory.db"}']
    proc = start(['-m', module, '--ros-args'] + args)
    wait_for_line(proc, ready, 60)
    sent = time.monotonic()
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 0, output
    assert 'Traceback' not in output and 'Error' not in output, output


class Hub:
    """
    A stand-in Hugging Face endpoint on 127.0.0.1 with a slow network.

    It answers the reachability probe (HEAD /) at once and then holds
    every download open without a byte, as a stalled link does; ``asked``
    is set when a download was requested.
    """

    def __init__(self, answer_probe=True):
        import http.server
        hub = self
        self.asked = threading.Event()
        self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):

            def do_HEAD(self):  # noqa: N802 - http.server's naming
                if self.path == '/' and answer_probe:
                    self.send_response(200)
                    self.end_headers()
                    return
                self._stall()

            def do_GET(self):  # noqa: N802 - http.server's naming
                self._stall()

            def _stall(self):
                hub.asked.set()
                hub.release.wait(30)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def online(tmp_path, endpoint):
    """Environment of a machine with an empty cache and this endpoint."""
    return {'HF_HUB_OFFLINE': None, 'TRANSFORMERS_OFFLINE': None,
            'HF_HOME': str(tmp_path / 'hf_home'), 'HF_ENDPOINT': endpoint}


@pytest.mark.parametrize('module', ['camera_caption.nodes.captioner_node',
                                    'camera_caption'])
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_while_the_model_loads_exits_at_once(tmp_path, module, sig):
    hub = Hub()
    try:
        if module == 'camera_caption':
            args = ['-m', module, '--source', 'test_pattern', '--model',
                    'org/big-model', '--device', 'cpu']
        else:
            args = ['-m', module, '--ros-args', '-p', 'model:=org/big-model',
                    '-p', 'device:=cpu']
        proc = start(args, **online(tmp_path, hub.url))
        # The loader is now blocked on a download that does not come.
        assert hub.asked.wait(60), 'the model download never started'
        sent = time.monotonic()
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=10)
    finally:
        hub.close()
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 0, output
    assert 'Traceback' not in output, output
    assert 'stopped while starting up' in output, output


@pytest.mark.parametrize('probe', ['refused', 'silent'])
def test_unreachable_hub_fails_fast_in_one_line(tmp_path, probe):
    import socket
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    port = listener.getsockname()[1]
    if probe == 'refused':
        listener.close()               # nothing listens: refused at once
    else:
        listener.listen(8)             # accepts, never answers: a hang
    try:
        proc = start(['-m', 'camera_caption.nodes.captioner_node', '--ros-args',
                      '-p', 'model:=Salesforce/blip2-opt-2.7b', '-p',
                      'device:=cpu'],
                     **online(tmp_path, f'http://127.0.0.1:{port}'))
        lines = wait_for_line(proc, 'loading model', 60)
        loading = time.monotonic()
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - loading
    finally:
        listener.close()
    output = ''.join(lines) + output
    assert proc.returncode == 1, output
    assert took <= 5.0, (took, output)
    errors = [line for line in output.splitlines() if 'FATAL' in line
              or 'ERROR' in line or 'WARN' in line or 'Retry' in line]
    assert len(errors) == 1, output
    assert 'cannot be reached' in errors[0], output
    assert 'hf download Salesforce/blip2-opt-2.7b' in errors[0]


def test_repeated_ctrl_c_while_ending_still_exits_0(tiny_model_dir):
    # A terminal's Ctrl-C reaches a launched node twice: from the terminal
    # and from ros2 launch.  Keep sending it until the node is gone.
    proc = start(['-m', 'camera_caption', '--source', 'test_pattern',
                  '--model', tiny_model_dir, '--rate_hz', '4'])
    wait_for_line(proc, 'caption: ', 60)
    sent = 0
    while proc.poll() is None and sent < 200:
        proc.send_signal(signal.SIGINT)
        sent += 1
        try:
            proc.wait(0.02)
        except subprocess.TimeoutExpired:
            pass
    output, _ = proc.communicate(timeout=10)
    assert sent >= 2, sent
    assert proc.returncode == 0, (proc.returncode, output)
    assert 'Traceback' not in output, output
