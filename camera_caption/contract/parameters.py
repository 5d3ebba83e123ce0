"""
Every node parameter: name, default, description and validation.

No ROS import.  The node modules declare exactly these parameters; the
YAML config, the launch file and the README tables document them, and a
test keeps the four in step.  Values are coerced to the declared kind so
that ``rate_hz: 2`` (an integer in YAML) or ``source:=0`` (an integer to
the launch system) are accepted, and a bad value is refused with a message
that names the parameter.
"""

from dataclasses import dataclass

from camera_caption.contract.constants import (BACKENDS, CAMERA_ENCODINGS,
                                               DEFAULT_MODEL, DTYPES,
                                               QUANTIZE_CHOICES,
                                               RELIABILITY_CHOICES,
                                               TRANSCRIPT_FORMATS)
from camera_caption.contract.errors import ParameterError
from camera_caption.contract.watch_patterns import (compile_patterns,
                                                    split_watch)

BACKEND_CHOICES = tuple(BACKENDS)
# The captioner may also follow the publishers (pipeline.qos_choice).
SUBSCRIPTION_RELIABILITY_CHOICES = RELIABILITY_CHOICES + ('auto',)


@dataclass(frozen=True)
class Param:
    """One node parameter."""

    name: str
    default: object
    description: str
    choices: tuple = ()
    minimum: float = None
    maximum: float = None
    live: bool = False       # may be changed with `ros2 param set`

    @property
    def kind(self):
        """Python type of the value (str, int, float or bool)."""
        return type(self.default)

    def coerce(self, value):
        """Return ``value`` as this parameter's kind, or raise."""
        kind = self.kind
        if kind is bool:
            if isinstance(value, bool):
                out = value
            elif isinstance(value, str) and value.lower() in (
                    'true', 'false'):
                out = value.lower() == 'true'
            else:
                raise self.error(value, 'must be true or false')
        elif kind is str:
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                out = str(value)
            else:
                raise self.error(value, 'must be a string')
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or value != int(value):
                raise self.error(value, 'must be an integer')
            out = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(value, 'must be a number')
            out = float(value)
            if out != out:
                raise self.error(value, 'must be a number')
        if self.choices and out not in self.choices:
            raise self.error(value, 'must be one of ' + ', '.join(
                str(c) for c in self.choices))
        if self.minimum is not None and out < self.minimum:
            raise self.error(value, f'must be >= {self.minimum:g}'
                             if self.minimum else 'must be >= 0')
        if self.maximum is not None and out > self.maximum:
            raise self.error(value, f'must be <= {self.maximum:g}')
        return out

    def error(self, value, reason):
        """Return a :class:`ParameterError` naming this parameter."""
        return ParameterError(
            f"parameter '{self.name}' = {value!r} is invalid: {reason}")


class PositiveParam(Param):
    """A number that must be strictly greater than zero."""

    def coerce(self, value):
        """Coerce, then refuse zero and negative values."""
        out = super().coerce(value)
        if out <= 0:
            raise self.error(value, 'must be > 0')
        return out


class WatchParam(Param):
    """
    Patterns to watch for: comma-separated in a string, or a string list.

    :meth:`coerce` returns the patterns as a tuple, each one compiled once
    to refuse a bad regular expression with the reason.
    """

    def coerce(self, value):
        """Return the tuple of patterns, or raise naming the bad one."""
        try:
            patterns = split_watch(value)
            compile_patterns(patterns)
        except ValueError as exc:
            raise self.error(value, str(exc)) from None
        return patterns


CAMERA_PARAMETERS = (
    Param('source', '0',
          "Frame source: V4L2 index ('0') or path ('/dev/video0'), a video "
          'file, a folder of images, a stream URL (rtsp://, http://) or '
          "'test_pattern'."),
    Param('width', 640, "Frame width in pixels (0 = the source's own).",
          minimum=0, maximum=16384),
    Param('height', 480, "Frame height in pixels (0 = the source's own).",
          minimum=0, maximum=16384),
    Param('fps', 0.0, "Frames per second to publish; 0 = the source's own "
          '(a video file its own rate, a device its mode, an image folder '
          '1, the test pattern 30).', minimum=0.0, maximum=1000.0),
    Param('encoding', 'rgb8', 'Published image encoding.',
          choices=CAMERA_ENCODINGS),
    Param('frame_id', 'camera', 'header.frame_id of published images.'),
    Param('camera_info_url', '', 'Calibration YAML for camera_info '
          '(file:///path.yaml, package://pkg/path.yaml or a path, as '
          'camera_calibration writes it); empty = uncalibrated.'),
    Param('loop', True, 'Restart a video file or image folder at its end.'),
    Param('reliability', 'reliable', 'QoS reliability of image_raw '
          '(reliable suits every subscriber).', choices=RELIABILITY_CHOICES),
    Param('publish_compressed', False, 'Also publish JPEG '
          'sensor_msgs/CompressedImage on image_raw/compressed.'),
    Param('jpeg_quality', 80, 'JPEG quality of image_raw/compressed '
          '(1-100).', minimum=1, maximum=100),
    PositiveParam('stream_timeout_s', 5.0, 'Seconds a stream may take to '
                  'open or to deliver a frame before it counts as lost.',
                  maximum=600.0),
    PositiveParam('reconnect_initial_s', 0.5, 'First wait before reopening '
                  'a device or stream that stopped delivering; doubles per '
                  'failed attempt.', maximum=600.0),
    PositiveParam('reconnect_max_s', 10.0, 'Longest wait between '
                  'reconnection attempts.', maximum=3600.0),
    Param('reconnect_attempts', 0, 'Reconnection attempts before the '
          'camera gives up (0 = never).', minimum=0),
)

CAPTIONER_PARAMETERS = (
    Param('backend', 'local', "Captioning backend: 'local' (a model loaded "
          "in this process, on its GPU or CPU) or 'openai' (an "
          'OpenAI-compatible server at endpoint: vLLM, SGLang, transformers '
          'serve).', choices=BACKEND_CHOICES),
    Param('autostart', True, 'Configure (load the model) and activate '
          '(caption) at start; false: stay unconfigured until ros2 '
          'lifecycle set.'),
    Param('model', DEFAULT_MODEL,
          'Hugging Face hub id or local directory of a BLIP-2 model.'),
    Param('device', 'auto', "Torch device: 'auto' (cuda if available), "
          "'cpu', 'cuda' or 'cuda:N'."),
    Param('dtype', 'auto', "Weights dtype: 'auto' (on CUDA float16, or "
          'bfloat16 where the checkpoint was saved in it and the GPU '
          'computes it; on a CPU bfloat16 where it computes bfloat16 '
          "natively, AVX512-BF16 or AMX, else float32), 'float16', "
          "'bfloat16' or 'float32'.",
          choices=('auto',) + tuple(sorted(DTYPES))),
    Param('quantize', 'none', "CPU only: 'int8' stores the language "
          "model's linear weights in int8 (torch dynamic quantization): "
          'about half the bfloat16 decode time, at a small quality cost '
          "(see the docs); 'none' keeps the dtype's weights.",
          choices=QUANTIZE_CHOICES),
    Param('prompt', '', 'Text prompt; empty = plain caption. Example: '
          "'Question: what is happening? Answer:'. Not repeated in the "
          'caption.', live=True),
    Param('max_new_tokens', 20, 'Longest caption, in tokens.', minimum=1,
          maximum=512, live=True),
    Param('max_caption_chars', 2000, 'Longest caption or answer published '
          'or logged, in characters; a longer one is cut, ending in an '
          'ellipsis. Control characters and escape sequences are always '
          'removed.', minimum=16, maximum=100000, live=True),
    PositiveParam('rate_hz', 1.0, 'Most captions per second; frames in '
                  'between are dropped, the newest is captioned.',
                  maximum=1000.0, live=True),
    Param('reliability', 'auto', 'QoS reliability of the image '
          'subscription (depth 1). auto: reliable when every publisher on '
          'the topic offers reliable, else best_effort, re-checked once a '
          'second; reliable: only reliable publishers match; best_effort: '
          'every publisher matches, but large frames from another process '
          'are mostly lost.', choices=SUBSCRIPTION_RELIABILITY_CHOICES),
    Param('enable', True, 'Caption (true) or pause without unloading the '
          'model (false); also the ~/enable service.', live=True),
    Param('scene_change_threshold', 0.0, 'Skip inference unless the frame '
          'differs from the last captioned one by this mean grey level '
          '(0-255) on a 32x24 thumbnail; 0 = caption every frame.',
          minimum=0.0, maximum=255.0, live=True),
    Param('dedupe', False, 'Do not publish a caption equal (or nearly, see '
          'dedupe_similarity) to the previous one.', live=True),
    Param('dedupe_similarity', 1.0, 'Text similarity (0-1) at which a '
          'caption counts as a repeat; 1.0 = identical only.', minimum=0.0,
          maximum=1.0, live=True),
    PositiveParam('latency_warn_s', 2.0, 'Diagnostics turn WARN when the '
                  'mean frame-to-caption latency exceeds this.',
                  maximum=3600.0, live=True),
    Param('image_topics', '', 'Comma-separated image topics to caption '
          'together in one batch (several cameras); empty = image_raw. '
          "Each camera's caption goes to <its namespace>/caption."),
    Param('engine', 'auto', "'auto': the static-cache greedy fast path for "
          "BLIP-2/OPT (else generate(), with a warning); 'fast': the fast "
          "path or exit 1; 'generate': always HF generate().",
          choices=('auto', 'fast', 'generate')),
    Param('cpu_threads', 0, 'Torch threads when device is cpu; 0 = one '
          'fewer than the cores, so that ROS callbacks are not starved.',
          minimum=0, maximum=1024),
    Param('endpoint', '', "backend openai: base URL of the server's "
          'OpenAI-compatible API, http:// or https://, e.g. '
          'http://gpu-server:8000/v1.'),
    Param('remote_model', '', 'backend openai: served model name; empty = '
          "the server's only model (checked at start with GET /models)."),
    Param('api_key_env', '', 'backend openai: name of the environment '
          'variable that holds the API key (sent as a Bearer token, never '
          'logged); empty = no key.'),
    Param('ca_file', '', 'backend openai: CA certificate (PEM) that signed '
          "an https endpoint's certificate; empty = the system's CAs."),
    PositiveParam('request_timeout_s', 10.0, 'backend openai: seconds to '
                  'wait for the server (connect, and each read) before a '
                  'request counts as failed.', maximum=3600.0),
    Param('max_in_flight', 4, 'backend openai: most requests out at once '
          '(the frames of one batch, one per camera, go out together).',
          minimum=1, maximum=256),
    Param('image_max_side', 512, 'backend openai: frames are resized to at '
          'most this many pixels on their longer side before JPEG '
          'encoding; 0 = full size.', minimum=0, maximum=16384),
    Param('jpeg_quality', 90, 'backend openai: JPEG quality of the frames '
          'sent (1-100).', minimum=1, maximum=100),
    PositiveParam('retry_max_s', 10.0, 'backend openai: longest wait '
                  'between retries while the server is down (0.5 s, '
                  'doubling); frames are dropped meanwhile.', maximum=3600.0),
    Param('image_transport', 'raw', "'raw': sensor_msgs/Image on "
          "image_raw; 'compressed': sensor_msgs/CompressedImage on "
          'image_raw/compressed.', choices=('raw', 'compressed')),
    WatchParam('watch', '', 'Words or regular expressions (case-'
               'insensitive), comma-separated, or a list in the params '
               'file; a caption that newly matches one is published once '
               'on caption_event.', live=True),
    Param('question_queue_size', 10, 'Questions (on the question topic) '
          'that may wait to be answered; one more is refused with a log '
          'line.', minimum=1, maximum=1000),
    Param('event_holdoff_s', 30.0, 'Seconds after a caption_event before '
          'the same pattern may fire again for the same camera.',
          minimum=0.0, maximum=86400.0, live=True),
    Param('clip_frames', 1, 'Frames per caption: 1 = a still (the newest '
          'frame); N > 1 = a clip of N frames evenly spaced over '
          'clip_seconds, newest last, encoded VideoBLIP-style (BLIP-2 '
          'family, backend local).', minimum=1, maximum=64, live=True),
    PositiveParam('clip_seconds', 2.0, 'Time window a clip spans, ending '
                  'at the newest frame (clip_frames > 1).', maximum=600.0,
                  live=True),
    Param('system_prompt', '', 'System message put before the image(s) and '
          'prompt, for chat vision-language models and backend openai '
          '(BLIP-2 has none and ignores it); empty = none.', live=True),
    Param('trust_remote_code', False, 'Let from_pretrained run the model '
          "repository's own Python code (needed by some checkpoints); only "
          'for repositories you trust.'),
)


CAPTION_LOGGER_PARAMETERS = (
    Param('transcript_path', '', 'Also write captions to this file '
          "(empty = don't); flushed per caption."),
    Param('transcript_format', 'jsonl', 'jsonl (stamp, caption, topic per '
          'line), srt (SubRip) or vtt (WebVTT) subtitles timed from the '
          'image stamps.', choices=TRANSCRIPT_FORMATS),
    PositiveParam('subtitle_duration_s', 3.0, 'How long each subtitle '
                  'stays on screen (srt, vtt).', maximum=3600.0),
)

CAPTION_MEMORY_PARAMETERS = (
    Param('memory_path', '', 'SQLite file of the caption memory; empty = '
          '$ROS_HOME/camera_caption/memory.db (ROS_HOME defaults to '
          '~/.ros).'),
    Param('memory_url', '', 'postgresql://user@host:port/database: store '
          'in PostgreSQL instead (a fleet shares one server); empty = '
          'SQLite at memory_path.'),
    Param('memory_topics', '', 'Comma-separated caption_info topics to '
          'store; empty = every caption_info topic in the graph, looked '
          'for once a second.'),
    Param('memory_robot', '', 'Name stored with each caption (a fleet '
          "tells its robots apart by it); empty = this machine's host "
          'name.'),
    Param('memory_thumbnails', False, 'Also keep a small JPEG of each '
          'captioned frame, from caption_image/compressed.'),
    Param('memory_thumbnail_side', 160, 'Longer side of a thumbnail, in '
          'pixels.', minimum=16, maximum=4096),
    Param('memory_fixed_frame', '', "tf frame (e.g. 'map') in which the "
          "pose of each image's frame_id is stored, looked up at the image "
          'stamp where tf has it; empty = no pose.'),
    Param('memory_max_age_s', 0.0, 'Delete captions stored (or last '
          'repeated) longer ago than this; 0 = keep them.', minimum=0.0),
    Param('memory_max_rows', 0, 'Keep at most this many captions, the '
          'oldest go first; 0 = no limit.', minimum=0),
    Param('memory_max_mb', 1024.0, 'Keep the stored captions under this '
          'many megabytes, the oldest go first; 0 = no limit.',
          minimum=0.0),
    Param('memory_summary_endpoint', '', 'Base URL of an OpenAI-compatible '
          "server with a text model (e.g. the captioner's endpoint): "
          'recall with "summarize": true answers one paragraph of what '
          'happened; empty = no summaries.'),
    Param('memory_summary_model', '', 'Model that summarizes; empty = the '
          "server's only model."),
)

NODE_PARAMETERS = {
    'camera': CAMERA_PARAMETERS,
    'captioner': CAPTIONER_PARAMETERS,
    'caption_logger': CAPTION_LOGGER_PARAMETERS,
    'caption_memory': CAPTION_MEMORY_PARAMETERS,
}


def image_topic_list(text):
    """Split the ``image_topics`` parameter; empty means ``image_raw``."""
    topics = [t.strip() for t in str(text).replace(' ', ',').split(',')
              if t.strip()]
    return topics or ['image_raw']


def caption_topic_for(image_topic):
    """
    Name of the caption topic for an image topic.

    ``image_raw`` -> ``caption``; ``/cam1/image_raw`` -> ``/cam1/caption``;
    ``/front/color/image_raw`` -> ``/front/color/caption``; a bare name
    other than image_raw (``left``) -> ``left/caption``.
    """
    topic = image_topic.rstrip('/')
    if topic == 'image_raw':
        return 'caption'
    parent, _, _ = topic.rpartition('/')
    if parent or topic.startswith('/'):
        return (parent or '') + '/caption'
    return topic + '/caption'


def caption_topics(image_topics):
    """Map each image topic to its caption topic; refuse collisions."""
    mapping = {}
    for topic in image_topics:
        caption = caption_topic_for(topic)
        if caption in mapping.values():
            raise ParameterError(
                f"parameter 'image_topics' = {','.join(image_topics)!r} is "
                f'invalid: two cameras would publish on {caption}; give '
                'each camera its own namespace')
        mapping[topic] = caption
    return mapping


def find(specs, name):
    """Return the :class:`Param` called ``name`` in ``specs`` (or None)."""
    for spec in specs:
        if spec.name == name:
            return spec
    return None
