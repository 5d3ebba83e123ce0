"""
Where camera frames come from: devices, files, folders, streams, pattern.

No ROS import.  :func:`open_source` turns the camera node's ``source``
parameter into a :class:`FrameSource`; ``read()`` returns the next BGR
uint8 frame (OpenCV's channel order) or None at the end of a file.
Sources that are not paced by hardware (files, the test pattern) report
``paced = False`` and the caller sleeps to ``fps``.
"""

import math
import os
import sys
import threading

from camera_caption.contract.errors import SourceError
from camera_caption.frames import scenes
from camera_caption.frames.image_conversion import (check_encoded_size,
                                                    ImageConversionError)

try:
    import cv2
except ImportError:  # pragma: no cover - opencv is a declared dependency
    cv2 = None

TEST_PATTERN = 'test_pattern'
# Largest image file of a folder source read, in bytes.
MAX_IMAGE_BYTES = 256 * 2**20


class FrameError(RuntimeError):
    """One frame that cannot be delivered; the next one may be fine."""


class FrameSource:
    """Base class: ``read()`` frames, ``close()`` when done."""

    name = ''
    paced = False   # True when read() itself waits for the next frame
    fps = 30.0
    width = 0
    height = 0

    def read(self):
        """Return the next BGR frame, or None when the source has ended."""
        raise NotImplementedError

    def close(self):
        """Release the source."""

    def describe(self):
        """Return a one-line description for logs."""
        return f'{self.name} {self.width}x{self.height} @ {self.fps:g} fps'


class TestPatternSource(FrameSource):
    """
    The demo model's scenes in turn: one coloured shape, slowly moving.

    Every ``scene_seconds`` of frames (counted at ``fps``, not wall time,
    so the sequence is deterministic) the next scene of
    :func:`camera_caption.frames.scenes.canonical_scenes` comes up; within a
    scene the shape circles slowly around the centre, so consecutive
    frames always differ.  :meth:`scene` says what frame ``n`` shows.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, width=640, height=480, fps=30.0, scene_seconds=3.0):
        if width <= 0 or height <= 0:
            raise SourceError(
                f'test_pattern needs a positive size, got {width}x{height}')
        self.name = TEST_PATTERN
        self.width, self.height, self.fps = int(width), int(height), fps
        self.scenes = scenes.canonical_scenes()
        self.frames_per_scene = max(1, int(round(scene_seconds * fps)))
        self._count = 0

    def scene(self, index):
        """Return (colour, shape, background) of frame ``index`` (from 0)."""
        return self.scenes[(index // self.frames_per_scene)
                           % len(self.scenes)]

    def caption(self, index):
        """Return the sentence that is true of frame ``index``."""
        return scenes.caption_of(*self.scene(index))

    def read(self):
        """Return the next pattern frame (never ends)."""
        index = self._count
        self._count += 1
        # One turn of a small circle per scene, from the centre down.
        phase = 2 * math.pi * (index % self.frames_per_scene) \
            / self.frames_per_scene
        radius = 0.08 * min(self.width, self.height)
        centre = (self.width / 2 + radius * math.sin(phase),
                  self.height / 2 + radius * (1 - math.cos(phase)))
        return scenes.render_scene(*self.scene(index), self.width,
                                   self.height, centre=centre)


def classify(source):
    """
    Return ``(kind, target)`` for a ``source`` parameter value.

    kind is one of ``test_pattern``, ``device`` (V4L2 index or path),
    ``stream`` (URL), ``file`` (video file) or ``folder`` (images).
    """
    text = str(source).strip()
    if text in (TEST_PATTERN, 'test', 'pattern'):
        return TEST_PATTERN, None
    if text.isdigit():
        return 'device', int(text)
    if text.startswith('/dev/'):
        return 'device', text
    if '://' in text:
        return 'stream', text
    path = os.path.expanduser(text)
    if os.path.isdir(path):
        return 'folder', path
    return 'file', path


def open_source(source, width=0, height=0, fps=0.0, loop=True,
                timeout=5.0):
    """
    Open the frame source named by ``source``.

    ``width``/``height``/``fps`` of 0 mean "the source's own"; the test
    pattern then uses 640x480 at 30 fps.  ``timeout`` bounds how long a
    stream may take to open or to deliver a frame.  Raises
    :class:`SourceError`.
    """
    kind, target = classify(source)
    if kind == TEST_PATTERN:
        return TestPatternSource(width or 640, height or 480, fps or 30.0)
    if kind == 'folder':
        return ImageFolderSource(target, fps or 1.0, loop)
    return VideoCaptureSource(kind, target, width, height, fps, loop,
                              timeout)


class VideoCaptureSource(FrameSource):
    """OpenCV ``VideoCapture`` over a device, a video file or a stream."""

    def __init__(self, kind, target, width=0, height=0, fps=0.0, loop=True,
                 timeout=5.0):
        if cv2 is None:  # pragma: no cover
            raise SourceError('OpenCV (python3-opencv) is not installed')
        self.kind = kind
        self.name = str(target)
        self.loop = loop
        if kind == 'file' and not os.path.exists(target):
            raise SourceError(f"video file '{target}' does not exist")
        if kind == 'device':
            check_device(target)
        if kind == 'stream':
            ms = int(timeout * 1000)
            self._cap = cv2.VideoCapture(
                target, cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                 cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            what = {'device': 'camera device', 'file': 'video file',
                    'stream': 'stream'}[kind]
            raise SourceError(f"{what} '{target}' could not be opened"
                              + (' (unreadable or not a video)'
                                 if kind == 'file' else ''))
        if kind == 'device':
            if width:
                self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                self._cap.set(cv2.CAP_PROP_FPS, fps)
        self.paced = kind in ('device', 'stream')
        native_fps = self._cap.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < native_fps < 1000:
            native_fps = 30.0
        # A file plays at its own rate unless fps asks for another one.
        self.fps = float(fps or native_fps) if kind == 'file' else native_fps
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.negotiation = ''
        if kind == 'device':
            self.negotiation = negotiation_note(
                (width, height, fps), (self.width, self.height, self.fps))
        self._resize = None
        if kind != 'device' and width and height and \
                (width, height) != (self.width, self.height):
            self._resize = (int(width), int(height))
            self.width, self.height = self._resize
        if kind == 'file':
            ok, first = self._cap.read()
            if not ok:
                self._cap.release()
                raise SourceError(
                    f"video file '{target}' holds no decodable frame")
            self._pending = first
        else:
            self._pending = None

    def read(self):
        """Return the next frame, looping files when ``loop`` is set."""
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self._cap.read()
            if not ok and self.kind == 'file' and self.loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self._cap.read()
            if not ok:
                if self.kind == 'file':
                    return None
                raise SourceError(f"{self.kind} '{self.name}' delivered no "
                                  'frame (unplugged or stream ended?)')
        if self._resize is not None:
            frame = cv2.resize(frame, self._resize,
                               interpolation=cv2.INTER_AREA)
        return frame

    def close(self):
        """Release the capture."""
        self._cap.release()


def video_devices(root='/dev'):
    """List the V4L2 device nodes that exist (``/dev/video*``), in order."""
    try:
        names = [n for n in os.listdir(root) if n.startswith('video')
                 and n[5:].isdigit()]
    except OSError:
        return []
    return [os.path.join(root, n) for n in sorted(names,
                                                  key=lambda n: int(n[5:]))]


def check_device(target, root='/dev'):
    """
    Raise :class:`SourceError` for a camera device that does not exist.

    ``target`` is an index (``0`` = ``/dev/video0``) or a path.  The error
    lists the devices that do exist, so that a wrong index is fixed at once
    (and OpenCV never prints its own warnings for a missing device).
    """
    if sys.platform != 'linux':
        return                     # other systems number cameras otherwise
    path = target if isinstance(target, str) else f'{root}/video{target}'
    if os.path.exists(path):
        return
    found = video_devices(root)
    there = ('cameras here: ' + ', '.join(found) if found else
             'no /dev/video* device here (is the camera plugged in? in a '
             'container, pass the device through)')
    what = f"'{path}'" if isinstance(target, str) else f'{target} ({path})'
    raise SourceError(f'camera device {what} does not exist; {there}')


def negotiation_note(asked, got):
    """Say how a device's mode differs from what was asked ('' if not)."""
    (aw, ah, af), (gw, gh, gf) = asked, got
    differs = (aw and aw != gw) or (ah and ah != gh) or (
        af and abs(af - gf) > 0.5)
    if not differs:
        return ''
    return (f'asked for {aw or gw}x{ah or gh} @ {af or gf:g} fps, the device '
            f'delivers {gw}x{gh} @ {gf:g} fps')


class ReconnectingSource(FrameSource):
    """
    Reopen a device or stream that stops delivering, with bounded backoff.

    ``opener()`` returns a fresh :class:`FrameSource`.  When ``read()`` of
    the current one raises :class:`SourceError`, the failure is reported
    once through ``log(message)``, then ``opener`` is retried after
    ``retry_initial`` seconds, doubling up to ``retry_max``; ``stop`` (an
    Event) ends the waiting.  After ``retry_limit`` failed reopenings
    (0 = never give up) ``read()`` raises.  Files and the test pattern are
    not wrapped: they do not go away.
    """

    def __init__(self, opener, source, retry_initial=0.5, retry_max=10.0,
                 retry_limit=0, log=None, stop=None, sleep=None):
        self._opener = opener
        self._source = source
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retry_limit = retry_limit
        self._log = log or (lambda message: None)
        self._stop = stop or threading.Event()
        self._sleep = sleep or self._stop.wait
        self.reconnects = 0
        self.outages = 0           # times the source stopped delivering
        self._copy_info()

    def _copy_info(self):
        for attr in ('name', 'paced', 'fps', 'width', 'height'):
            setattr(self, attr, getattr(self._source, attr))

    def read(self):
        """Return the next frame, reconnecting as long as needed."""
        while True:
            try:
                return self._source.read()
            except SourceError as exc:
                self._source.close()
                self.outages += 1
                self._log(f'{exc}; reconnecting (first retry in '
                          f'{self._retry_initial:g} s)')
            self._reopen()

    def _reopen(self):
        delay, attempts = self._retry_initial, 0
        while True:
            if self._sleep(delay) or self._stop.is_set():
                raise SourceError(f"'{self.name}': stopped while "
                                  'reconnecting')
            attempts += 1
            try:
                self._source = self._opener()
            except SourceError as exc:
                if self._retry_limit and attempts >= self._retry_limit:
                    raise SourceError(f'{exc} (gave up after {attempts} '
                                      'reconnection attempts)') from exc
                delay = min(delay * 2, self._retry_max)
                continue
            self.reconnects += 1
            self._log(f"'{self.name}' is back after {attempts} attempt(s)")
            self._copy_info()
            return

    def close(self):
        """Close the current source."""
        self._source.close()


IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm')


class ImageFolderSource(FrameSource):
    """Images of a folder in name order, paced at ``fps``, optional loop."""

    def __init__(self, folder, fps=1.0, loop=True):
        self.name = folder
        self.fps = float(fps)
        self.loop = loop
        self._files = sorted(
            os.path.join(folder, f) for f in os.listdir(folder)
            if f.lower().endswith(IMAGE_EXTENSIONS))
        if not self._files:
            raise SourceError(f"image folder '{folder}' holds no images "
                              f"({', '.join(IMAGE_EXTENSIONS)})")
        self._index = 0
        first = self._load(self._files[0])
        self.height, self.width = first.shape[:2]

    def _load(self, path, error=SourceError):
        try:
            size = os.path.getsize(path)
            if size > MAX_IMAGE_BYTES:
                raise error(f"image '{path}' is {size} bytes, more than "
                            f'{MAX_IMAGE_BYTES} read')
            check_encoded_size(path, 'file', path)
        except ImageConversionError as exc:
            raise error(f"image '{path}' {exc.reason}") from None
        except OSError as exc:
            raise error(f"image '{path}' cannot be read: {exc}") from None
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise error(f"image '{path}' could not be decoded")
        return image

    def read(self):
        """
        Return the next image; None after the last one unless looping.

        An image that cannot be decoded raises :class:`FrameError`: the
        caller skips it and reads on.
        """
        if self._index >= len(self._files):
            if not self.loop:
                return None
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        return self._load(path, FrameError)
