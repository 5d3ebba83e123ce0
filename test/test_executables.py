"""The executables as users run them: real processes, signals, exit codes."""

import os
import signal
import subprocess
import sys
import time

import pytest
import rclpy
from ros_helpers import CaptionListener, spinning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(args):
    path = ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=path)
    return subprocess.Popen([sys.executable] + args, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.parametrize('sig,dtype', [(signal.SIGINT, 'float32'),
                                       (signal.SIGTERM, 'float16')])
def test_one_process_pipeline_captions_and_exits_cleanly(
        ros_context, tiny_model_dir, sig, dtype):
    proc = start(['-m', 'camera_caption', '--source', 'test_pattern',
                  '--model', tiny_model_dir, '--rate_hz', '4',
                  '--max_new_tokens', '4', '--namespace', 'robot1',
                  '--dtype', dtype])
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


@pytest.mark.parametrize('module,args,expected', [
    ('camera_caption.captioner_node', ['-p', 'model:=/nonexistent/blip2'],
     "model directory '/nonexistent/blip2' does not exist"),
    ('camera_caption.captioner_node', ['-p', 'rate_hz:=0.0'],
     "parameter 'rate_hz' = 0.0 is invalid: must be > 0"),
    ('camera_caption.captioner_node', ['-p', 'reliability:=sometimes'],
     "parameter 'reliability' = 'sometimes' is invalid"),
    ('camera_caption.captioner_node', ['-p', 'dtype:=int3'],
     "parameter 'dtype' = 'int3' is invalid"),
    ('camera_caption.camera_node', ['-p', 'source:=/nonexistent/clip.mp4'],
     "video file '/nonexistent/clip.mp4' does not exist"),
    ('camera_caption.camera_node', ['-p', 'encoding:=mono8'],
     "parameter 'encoding' = 'mono8' is invalid"),
])
def test_start_up_errors_are_one_clear_line_and_exit_1(module, args,
                                                       expected):
    proc = start(['-m', module, '--ros-args'] + args)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert expected in output, output
    assert 'Traceback' not in output, output


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
    ('camera_caption.camera_node', ['-p', 'source:=test_pattern'],
     'publishing test_pattern'),
    ('camera_caption.captioner_node', ['-p', 'device:=cpu'], 'captioning'),
    ('camera_caption.caption_logger_node', [], None),
])
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_each_node_exits_within_2_s_on_signal(tiny_model_dir, module, args,
                                              ready, sig):
    if module.endswith('captioner_node'):
        args = args + ['-p', f'model:={tiny_model_dir}']
    proc = start(['-m', module, '--ros-args'] + args)
    if ready:
        wait_for_line(proc, ready, 60)
    else:
        time.sleep(2.0)
    sent = time.monotonic()
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 0, output
    assert 'Traceback' not in output and 'Error' not in output, output
