"""Parameter validation and the launch-argument mapping (no ROS needed)."""

from camera_caption.contract.launch_arguments import (LAUNCH_ARGUMENTS,
                                                      node_overrides,
                                                      parse_bool)
from camera_caption.contract.parameters import (CAMERA_PARAMETERS,
                                                CAPTIONER_PARAMETERS,
                                                find, ParameterError)
import pytest

pytestmark = pytest.mark.unit


def spec(name, specs=CAPTIONER_PARAMETERS):
    return find(specs, name)


@pytest.mark.parametrize('name,value,expected', [
    ('rate_hz', 2, 2.0),               # an integer in YAML is fine
    ('rate_hz', 0.5, 0.5),
    ('max_new_tokens', 30.0, 30),
    ('prompt', 'Question: what? Answer:', 'Question: what? Answer:'),
    ('dtype', 'bfloat16', 'bfloat16'),
    ('reliability', 'reliable', 'reliable'),
])
def test_good_values_are_coerced(name, value, expected):
    out = spec(name).coerce(value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize('name,value,reason', [
    ('rate_hz', 0, 'must be > 0'),
    ('rate_hz', -2.0, 'must be > 0'),
    ('rate_hz', 'fast', 'must be a number'),
    ('rate_hz', float('nan'), 'must be a number'),
    ('max_new_tokens', -1, 'must be >= 1'),
    ('max_new_tokens', 2.5, 'must be an integer'),
    ('max_new_tokens', 100000, 'must be <= 512'),
    ('reliability', 'sometimes', 'must be one of best_effort, reliable'),
    ('dtype', 'int3', 'must be one of'),
])
def test_bad_values_name_the_parameter(name, value, reason):
    with pytest.raises(ParameterError) as info:
        spec(name).coerce(value)
    assert f"parameter '{name}'" in str(info.value)
    assert reason in str(info.value)


def test_camera_source_accepts_integer_index_and_bool_strings():
    assert find(CAMERA_PARAMETERS, 'source').coerce(0) == '0'
    assert find(CAMERA_PARAMETERS, 'loop').coerce('false') is False
    with pytest.raises(ParameterError, match="'fps'"):
        find(CAMERA_PARAMETERS, 'fps').coerce(-5)


def test_launch_arguments_map_to_node_parameters():
    overrides, remap, use_camera = node_overrides({
        'source': '0', 'model': '/models/blip2', 'rate_hz': '2',
        'max_new_tokens': '12', 'prompt': '', 'use_camera': 'false',
        'image_topic': '/camera/color/image_raw'})
    assert overrides['camera'] == {'source': '0'}
    assert overrides['captioner'] == {'model': '/models/blip2',
                                      'rate_hz': 2.0, 'max_new_tokens': 12}
    assert use_camera is False
    assert remap['captioner'] == [
        ('image_raw', '/camera/color/image_raw'),
        ('image_raw/compressed', '/camera/color/image_raw/compressed'),
        ('camera_info', '/camera/color/camera_info')]
    assert remap['camera'] == remap['captioner']


def test_bad_launch_argument_is_refused():
    with pytest.raises(ParameterError, match="'rate_hz'"):
        node_overrides({'rate_hz': '-1'})
    with pytest.raises(ParameterError, match="'use_camera'"):
        parse_bool('use_camera', 'maybe')


def test_every_overriding_argument_names_a_real_parameter():
    from camera_caption.contract.parameters import NODE_PARAMETERS
    for arg in LAUNCH_ARGUMENTS:
        if arg.node:
            assert find(NODE_PARAMETERS[arg.node], arg.name), arg.name
