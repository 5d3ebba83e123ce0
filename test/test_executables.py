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


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_one_process_pipeline_captions_and_exits_cleanly(
        ros_context, tiny_model_dir, sig):
    proc = start(['-m', 'camera_caption', '--source', 'test_pattern',
                  '--model', tiny_model_dir, '--rate_hz', '4',
                  '--max_new_tokens', '4', '--namespace', 'robot1'])
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
    assert 'model ready' in output and 'on cpu' in output


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
    ('camera_caption.camera_node', ['-p', 'source:=7'],
     'camera device 7 (/dev/video7) does not exist; '),
    ('camera_caption.camera_node', ['-p', 'camera_info_url:=/no/cam.yaml'],
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
    from camera_caption.launch_arguments import LAUNCH_ARGUMENTS
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
    ('camera_caption.camera_node', ['-p', 'source:=test_pattern'],
     'publishing test_pattern'),
    ('camera_caption.captioner_node', ['-p', 'device:=cpu'], 'captioning'),
    ('camera_caption.caption_logger_node', [], 'logging captions of'),
])
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_each_node_exits_within_2_s_on_signal(tiny_model_dir, module, args,
                                              ready, sig):
    if module.endswith('captioner_node'):
        args = args + ['-p', f'model:={tiny_model_dir}']
    proc = start(['-m', module, '--ros-args'] + args)
    wait_for_line(proc, ready, 60)
    sent = time.monotonic()
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2.0
    assert proc.returncode == 0, output
    assert 'Traceback' not in output and 'Error' not in output, output
