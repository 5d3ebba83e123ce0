"""
Where camera frames come from: devices, files, folders, streams, pattern.

No ROS import.  :func:`open_source` turns the camera node's ``source``
parameter into a :class:`FrameSource`; ``read()`` returns the next BGR
uint8 frame (OpenCV's channel order) or None at the end of a file.
Sources that are not paced by hardware (files, the test pattern) report
``paced = False`` and the caller sleeps to ``fps``.
"""

import os

import numpy as np

try:
    import cv2
except ImportError:  # pragma: no cover - opencv is a declared dependency
    cv2 = None

TEST_PATTERN = 'test_pattern'


class SourceError(RuntimeError):
    """A source that cannot be opened or read; names the source."""


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
    """Colour bars with a moving square and a frame counter band."""

    __test__ = False  # not a pytest test class

    def __init__(self, width=640, height=480, fps=30.0):
        if width <= 0 or height <= 0:
            raise SourceError(
                f'test_pattern needs a positive size, got {width}x{height}')
        self.name = TEST_PATTERN
        self.width, self.height, self.fps = int(width), int(height), fps
        colours = np.array([[255, 255, 255], [0, 255, 255], [255, 255, 0],
                            [0, 255, 0], [255, 0, 255], [0, 0, 255],
                            [255, 0, 0], [0, 0, 0]], np.uint8)  # BGR
        idx = (np.arange(self.width) * len(colours)) // self.width
        self._bars = np.broadcast_to(colours[idx],
                                     (self.height, self.width, 3)).copy()
        self._count = 0

    def read(self):
        """Return the next pattern frame (never ends)."""
        frame = self._bars.copy()
        side = max(4, min(self.width, self.height) // 6)
        span_x = max(1, self.width - side)
        span_y = max(1, self.height - side)
        x = (self._count * 7) % (2 * span_x)
        y = (self._count * 5) % (2 * span_y)
        x = x if x < span_x else 2 * span_x - x
        y = y if y < span_y else 2 * span_y - y
        frame[y:y + side, x:x + side] = (32, 32, 32)
        self._count += 1
        return frame


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


def open_source(source, width=0, height=0, fps=0.0, loop=True):
    """
    Open the frame source named by ``source``.

    ``width``/``height``/``fps`` of 0 mean "the source's own"; the test
    pattern then uses 640x480 at 30 fps.  Raises :class:`SourceError`.
    """
    kind, target = classify(source)
    if kind == TEST_PATTERN:
        return TestPatternSource(width or 640, height or 480, fps or 30.0)
    if kind == 'folder':
        return ImageFolderSource(target, fps or 1.0, loop)
    return VideoCaptureSource(kind, target, width, height, fps, loop)


class VideoCaptureSource(FrameSource):
    """OpenCV ``VideoCapture`` over a device, a video file or a stream."""

    def __init__(self, kind, target, width=0, height=0, fps=0.0, loop=True):
        if cv2 is None:  # pragma: no cover
            raise SourceError('OpenCV (python3-opencv) is not installed')
        self.kind = kind
        self.name = str(target)
        self.loop = loop
        if kind == 'file' and not os.path.exists(target):
            raise SourceError(f"video file '{target}' does not exist")
        if kind == 'device' and isinstance(target, str) and \
                not os.path.exists(target):
            raise SourceError(f"camera device '{target}' does not exist "
                              '(is the camera plugged in? ls /dev/video*)')
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

    def _load(self, path):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"image '{path}' could not be decoded")
        return image

    def read(self):
        """Return the next image; None after the last one unless looping."""
        if self._index >= len(self._files):
            if not self.loop:
                return None
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        return self._load(path)
