"""engine auto falls back loudly; engine fast refuses to start without it."""

import json
import os
import shutil

from camera_caption.contract.errors import ModelLoadError
from camera_caption.nodes.captioner_node import CaptionerNode
from camera_caption.nodes.node_runner import START_ERRORS
from camera_caption.nodes.ros_diagnostics import OK, WARN
import pytest
from ros_helpers import params

pytestmark = pytest.mark.ros

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
                         parameter_overrides=params(**values)).autostart()


def test_auto_fallback_shows_in_diagnostics(ros_context, beam_model_dir):
    node = captioner(ros_context, beam_model_dir)
    try:
        assert node.backend.fallback == REASON
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


def test_engine_fast_refuses_to_start_in_one_line(ros_context,
                                                  beam_model_dir):
    # A ModelLoadError is a start-up error: run_node logs its one line and
    # exits 1 (test_executables checks that for every start-up error).
    with pytest.raises(ModelLoadError) as info:
        captioner(ros_context, beam_model_dir, engine='fast')
    message = str(info.value)
    assert message == ('engine fast: the fast path cannot run on '
                       f"'{beam_model_dir}': {REASON}")
    assert '\n' not in message and isinstance(info.value, START_ERRORS)


def test_engine_auto_falls_back_with_one_warning(ros_context, beam_model_dir,
                                                 capfd):
    node = captioner(ros_context, beam_model_dir)
    node.destroy_node()
    lines = capfd.readouterr().err.splitlines()
    warnings = [line for line in lines if 'fast path unavailable' in line]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith('[WARN]') and REASON in warnings[0]
