"""engine auto falls back loudly; engine fast refuses to start without it."""

import json
import os
import shutil
import signal
import subprocess
import sys

from camera_caption.captioner_node import CaptionerNode
from camera_caption.ros_diagnostics import OK, WARN
import pytest
from ros_helpers import params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REASON = 'generation_config.num_beams = 3 needs generate()'


@pytest.fixture(scope='module')
def beam_model_dir(tiny_model_dir, tmp_path_factory):
    """Save the tiny model with beam search in its generation_config."""
    target = str(tmp_path_factory.mktemp('beams') / 'model')
    shutil.copytree(tiny_model_dir, target)
    path = os.path.join(target, 'generation_config.json')
    with open(path) as f:
        config = json.load(f)
    config['num_beams'] = 3
    with open(path, 'w') as f:
        json.dump(config, f)
    return target


def captioner(context, model, **extra):
    values = {'model': model, 'device': 'cpu', 'max_new_tokens': 3,
              'enable': False}
    values.update(extra)
    return CaptionerNode(context=context,
                         parameter_overrides=params(**values))


def test_auto_fallback_shows_in_diagnostics(ros_context, beam_model_dir):
    node = captioner(ros_context, beam_model_dir)
    try:
        assert node.engine.fast is None and node.fast_fallback == REASON
        level, message, values = node._diagnostics()
        assert (level, message) == (WARN, 'fast path unavailable: ' + REASON)
        assert values['engine'] == f'generate ({REASON})'
    finally:
        node.destroy_node()


def test_fast_and_generate_choices_in_diagnostics(ros_context,
                                                  tiny_model_dir):
    for choice, engine in [('generate', 'generate (engine: generate)'),
                           ('fast', 'fast'), ('auto', 'fast')]:
        node = captioner(ros_context, tiny_model_dir, engine=choice)
        try:
            level, _, values = node._diagnostics()
            assert (level, values['engine']) == (OK, engine)
        finally:
            node.destroy_node()


def run(args, timeout=60):
    path = ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=path)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'camera_caption.captioner_node',
         '--ros-args'] + args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    return proc


def test_engine_fast_refuses_to_start_in_one_line(beam_model_dir):
    proc = run(['-p', f'model:={beam_model_dir}', '-p', 'device:=cpu',
                '-p', 'engine:=fast'])
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    fatal = [line for line in output.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1, output
    assert 'engine fast: the fast path cannot run' in fatal[0]
    assert REASON in fatal[0]
    assert 'Traceback' not in output, output


def test_engine_auto_falls_back_with_one_warning(beam_model_dir):
    from test_executables import wait_for_line
    proc = run(['-p', f'model:={beam_model_dir}', '-p', 'device:=cpu'])
    try:
        lines = wait_for_line(proc, 'captioning /image_raw', 60)
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=10)
    warnings = [line for line in lines if 'fast path unavailable' in line]
    assert len(warnings) == 1 and '[WARN]' in warnings[0], lines
    assert REASON in warnings[0]
    assert proc.returncode == 0, output
