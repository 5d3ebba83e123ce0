"""Frame sources on real files written and decoded by OpenCV."""

from camera_caption.frames.frame_sources import (classify, ImageFolderSource,
                                                 open_source, SourceError,
                                                 TestPatternSource,
                                                 VideoCaptureSource)
import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.unit


def write_video(path, n=10, fps=15.0, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'),
                             fps, size)
    assert writer.isOpened()
    for i in range(n):
        frame = np.full((size[1], size[0], 3), (i * 20) % 256, np.uint8)
        writer.write(frame)
    writer.release()
    return str(path)


@pytest.mark.parametrize('text,kind', [
    ('test_pattern', 'test_pattern'), ('0', 'device'), ('2', 'device'),
    ('/dev/video0', 'device'), ('rtsp://127.0.0.1:8554/cam', 'stream'),
    ('http://127.0.0.1:8080/v.mjpg', 'stream'), ('/tmp/x.mp4', 'file'),
])
def test_classify(text, kind):
    assert classify(text)[0] == kind


def test_classify_folder(tmp_path):
    assert classify(str(tmp_path)) == ('folder', str(tmp_path))


def test_test_pattern_moves_and_has_the_asked_size():
    source = open_source('test_pattern', 320, 240, 10.0)
    assert isinstance(source, TestPatternSource)
    a, b = source.read(), source.read()
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    assert source.fps == 10.0 and not source.paced


def test_video_file_plays_at_its_fps_and_loops(tmp_path):
    path = write_video(tmp_path / 'clip.avi', n=10, fps=15.0)
    source = open_source(path, loop=True)
    assert isinstance(source, VideoCaptureSource)
    assert source.fps == pytest.approx(15.0)
    assert (source.width, source.height) == (64, 48)
    values = [int(source.read()[0, 0, 0]) for _ in range(12)]
    assert values[10] == pytest.approx(values[0], abs=4)  # looped
    assert values[5] == pytest.approx(100, abs=8)
    source.close()


def test_video_file_without_loop_ends(tmp_path):
    path = write_video(tmp_path / 'clip.avi', n=4)
    source = open_source(path, loop=False, fps=5.0)
    assert source.fps == 5.0  # fps overrides the file's rate
    frames = [source.read() for _ in range(5)]
    assert all(f is not None for f in frames[:4]) and frames[4] is None


def test_video_file_resized_to_asked_size(tmp_path):
    path = write_video(tmp_path / 'clip.avi', n=2)
    source = open_source(path, width=32, height=24)
    assert source.read().shape == (24, 32, 3)


def test_image_folder_in_name_order(tmp_path):
    for name, value in (('b.png', 20), ('a.png', 10), ('c.jpg', 30)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), value, np.uint8))
    (tmp_path / 'notes.txt').write_text('not an image')
    source = open_source(str(tmp_path), fps=2.0, loop=False)
    assert isinstance(source, ImageFolderSource)
    values = [int(source.read()[0, 0, 0]) for _ in range(3)]
    assert values[:2] == [10, 20] and abs(values[2] - 30) <= 3
    assert source.read() is None


def test_missing_or_bad_sources_name_themselves(tmp_path):
    with pytest.raises(SourceError, match='/nonexistent/clip.mp4'):
        open_source('/nonexistent/clip.mp4')
    fake = tmp_path / 'fake.mp4'
    fake.write_bytes(b'this is not a video' * 10)
    with pytest.raises(SourceError, match='fake.mp4'):
        open_source(str(fake))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SourceError, match='holds no images'):
        open_source(str(tmp_path / 'empty'))
    with pytest.raises(SourceError, match='/dev/video99'):
        open_source('/dev/video99')


def test_a_folder_image_that_decodes_too_large_is_skipped(tmp_path):
    import io
    from PIL import Image
    from camera_caption.frames.frame_sources import FrameError
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((20, 30, 3), np.uint8))
    bomb = io.BytesIO()
    Image.new('L', (20000, 20000)).save(bomb, 'PNG')   # 0.4 MB, 400 MP
    (tmp_path / 'b.png').write_bytes(bomb.getvalue())
    source = ImageFolderSource(str(tmp_path), loop=False)
    assert source.read().shape == (20, 30, 3)
    with pytest.raises(FrameError, match='b.png.*more than 67108864 pixels'):
        source.read()
