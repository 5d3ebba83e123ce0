"""
The launch arguments, shared by caption.launch.py and ``__main__``.

No ROS import.  Each argument either overrides one node parameter (when
not empty: empty keeps the value from the params file) or shapes the
graph (``use_camera``, ``image_topic``, ``namespace``, ``params_file``).
"""

from dataclasses import dataclass

from camera_caption.contract.parameters import find, NODE_PARAMETERS, ParameterError


@dataclass(frozen=True)
class LaunchArgument:
    """One launch argument."""

    name: str
    default: str
    description: str
    node: str = ''       # node whose parameter it overrides ('' = none)


LAUNCH_ARGUMENTS = (
    LaunchArgument('source', '', "camera source: '0', '/dev/video0', a "
                   "video file, an image folder, a URL or 'test_pattern'",
                   'camera'),
    LaunchArgument('fps', '', 'frames per second the camera publishes (0 = '
                   "the source's own)", 'camera'),
    LaunchArgument('width', '', "frame width (0 = the source's own)",
                   'camera'),
    LaunchArgument('height', '', "frame height (0 = the source's own)",
                   'camera'),
    LaunchArgument('loop', '', 'restart a video file or image folder at '
                   'its end (false: play it once)', 'camera'),
    LaunchArgument('backend', '', "'local' (a model in this process) or "
                   "'openai' (a serving engine at endpoint)", 'captioner'),
    LaunchArgument('endpoint', '', 'backend openai: base URL of the server, '
                   'e.g. http://gpu-server:8000/v1', 'captioner'),
    LaunchArgument('remote_model', '', 'backend openai: served model name '
                   "(empty: the server's only model)", 'captioner'),
    LaunchArgument('model', '', 'hub id or local directory of the BLIP-2 '
                   'model', 'captioner'),
    LaunchArgument('device', '', "'auto', 'cpu', 'cuda' or 'cuda:N'",
                   'captioner'),
    LaunchArgument('dtype', '', "'auto', 'float16', 'bfloat16' or "
                   "'float32'", 'captioner'),
    LaunchArgument('quantize', '', "'none' or 'int8' (CPU: int8 language "
                   'model weights)', 'captioner'),
    LaunchArgument('prompt', '', 'prompt text, e.g. "Question: what is '
                   'happening? Answer:"', 'captioner'),
    LaunchArgument('rate_hz', '', 'most captions per second', 'captioner'),
    LaunchArgument('max_new_tokens', '', 'longest caption in tokens',
                   'captioner'),
    LaunchArgument('autostart', '', 'load the model and caption at start '
                   '(false: wait for ros2 lifecycle set /captioner '
                   'configure)', 'captioner'),
    LaunchArgument('watch', '', 'words or regular expressions, comma-'
                   'separated, that raise caption_event (e.g. '
                   '"door,person")', 'captioner'),
    LaunchArgument('event_holdoff_s', '', 'seconds before the same '
                   'watched pattern fires again for a camera', 'captioner'),
    LaunchArgument('clip_frames', '', 'frames per caption: 1 = a still, '
                   'N > 1 = a clip of N frames over clip_seconds',
                   'captioner'),
    LaunchArgument('clip_seconds', '', 'time window of a clip, seconds',
                   'captioner'),
    LaunchArgument('memory', 'false', 'start the caption_memory node: '
                   'store every caption, answer recall (see the memory '
                   'docs)'),
    LaunchArgument('memory_path', '', 'caption_memory SQLite file (empty: '
                   '~/.ros/camera_caption/memory.db)', 'caption_memory'),
    LaunchArgument('memory_url', '', 'caption_memory in PostgreSQL: '
                   'postgresql://user@host/database', 'caption_memory'),
    LaunchArgument('use_camera', 'true', 'start the camera node (false: '
                   'caption image_topic from your own driver)'),
    LaunchArgument('image_topic', 'image_raw', 'image topic the camera '
                   'publishes and the captioner reads'),
    LaunchArgument('namespace', '', 'namespace for all three nodes'),
    LaunchArgument('params_file', '', 'YAML parameters file (empty: the '
                   "package's config/caption.yaml)"),
)


def parse_bool(name, text):
    """Return the boolean a launch argument string means, or raise."""
    value = str(text).strip().lower()
    if value in ('true', '1', 'yes', 'on'):
        return True
    if value in ('false', '0', 'no', 'off'):
        return False
    raise ParameterError(f"launch argument '{name}' = {text!r} is invalid: "
                         'must be true or false')


def _typed(text):
    """Read a launch argument string as YAML-ish scalar (int/float/str)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def node_overrides(values):
    """
    Map launch argument values to per-node parameters and remappings.

    Returns ``(overrides, remappings, use_camera)`` where ``overrides`` is
    ``{node: {param: value}}`` (validated) and ``remappings`` is
    ``{node: [(from, to), ...]}``, as launch_ros ``Node`` takes them.
    """
    overrides = {node: {} for node in NODE_PARAMETERS}
    for arg in LAUNCH_ARGUMENTS:
        text = values.get(arg.name, arg.default)
        if not arg.node or text in ('', None):
            continue
        spec = find(NODE_PARAMETERS[arg.node], arg.name)
        raw = str(text) if spec.kind is str else _typed(str(text))
        value = spec.coerce(raw)            # validated here, typed as given
        overrides[arg.node][arg.name] = raw if spec.kind is str else value
    use_camera = parse_bool('use_camera', values.get('use_camera', 'true'))
    parse_bool('memory', values.get('memory', 'false'))     # refused early
    topic = str(values.get('image_topic') or 'image_raw')
    parent = topic.rpartition('/')[0]
    info = (parent + '/' if parent or topic.startswith('/') else '') \
        + 'camera_info'
    remap = [('image_raw', topic),
             ('image_raw/compressed', f'{topic}/compressed'),
             ('camera_info', info)]
    remappings = {'camera': list(remap), 'captioner': list(remap),
                  'caption_logger': [], 'caption_memory': []}
    return overrides, remappings, use_camera
