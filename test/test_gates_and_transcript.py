"""Scene-change gate, caption deduper, stats and transcript writer."""

import json

from camera_caption.pipeline.caption_gates import (CaptionDeduper,
                                                   SceneChangeGate)
from camera_caption.pipeline.caption_stats import Stat
from camera_caption.pipeline.transcript import TranscriptWriter
from camera_caption.utilities.rate_window import RateWindow
import numpy as np
import pytest

pytestmark = pytest.mark.unit


def frame(value, noise=0, seed=0):
    rng = np.random.default_rng(seed)
    image = np.full((48, 64, 3), value, np.int16)
    if noise:
        image += rng.integers(-noise, noise + 1, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_gate_off_passes_everything():
    gate = SceneChangeGate(0.0)
    assert all(gate.should_caption(frame(10)) for _ in range(5))
    assert gate.gated == 0 and gate.passed == 5


def test_gate_skips_a_static_scene_with_sensor_noise_and_passes_changes():
    gate = SceneChangeGate(threshold=4.0)
    assert gate.should_caption(frame(100, noise=3, seed=0))
    static = [gate.should_caption(frame(100, noise=3, seed=i))
              for i in range(1, 20)]
    assert not any(static) and gate.gated == 19
    assert gate.should_caption(frame(160))           # the scene changed
    assert not gate.should_caption(frame(161))       # and is static again
    assert gate.last_difference == pytest.approx(1.0, abs=0.5)


def test_deduper_identical_and_near_identical():
    exact = CaptionDeduper(enabled=True, similarity=1.0)
    assert exact.should_publish('a man at a desk')
    assert not exact.should_publish('a man at a desk')
    assert exact.should_publish('a man at a desk with a laptop')
    near = CaptionDeduper(enabled=True, similarity=0.8)
    assert near.should_publish('a man sitting at a desk')
    assert not near.should_publish('a man sitting at the desk')
    assert near.should_publish('a dog running in a park')
    assert near.suppressed == 1
    off = CaptionDeduper(enabled=False)
    assert off.should_publish('x') and off.should_publish('x')


def test_rate_window_and_stat():
    now = [0.0]
    rate = RateWindow(clock=lambda: now[0])
    rate.add(10)
    now[0] = 2.0
    assert rate.per_second() == pytest.approx(5.0)
    now[0] = 3.0
    assert rate.per_second() == 0.0 and rate.total == 10
    stat = Stat(size=2)
    assert stat.mean is None
    for v in (1.0, 2.0, 4.0):
        stat.add(v)
    assert stat.last == 4.0 and stat.mean == pytest.approx(3.0)


def test_jsonl_transcript(tmp_path):
    path = tmp_path / 'log' / 'captions.jsonl'
    writer = TranscriptWriter(str(path), 'jsonl')
    writer.write(100.5, 'a robot arm', '/image_raw')
    writer.write(101.0, 'ünïcode caption', '/image_raw')
    # Flushed per line: readable before close.
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {'stamp': 100.5, 'caption': 'a robot arm', 'topic': '/image_raw'},
        {'stamp': 101.0, 'caption': 'ünïcode caption',
         'topic': '/image_raw'}]
    writer.close()


@pytest.mark.parametrize('fmt,sep', [('srt', ','), ('vtt', '.')])
def test_subtitles_are_timed_from_the_stamps(tmp_path, fmt, sep):
    path = tmp_path / f'captions.{fmt}'
    writer = TranscriptWriter(str(path), fmt, duration=2.5)
    writer.write(1000.0, 'first  caption')
    writer.write(3723.25, 'second\ncaption')
    text = path.read_text()
    writer.close()
    expected = (f'00:00:00{sep}000 --> 00:00:02{sep}500\nfirst caption\n\n'
                f'00:45:23{sep}250 --> 00:45:25{sep}750\nsecond caption\n\n')
    if fmt == 'srt':
        cues = expected.split('\n\n')
        expected = f'1\n{cues[0]}\n\n2\n{cues[1]}\n\n'
        assert text == expected
    else:
        assert text == 'WEBVTT\n\n' + expected


def test_unknown_transcript_format(tmp_path):
    with pytest.raises(ValueError, match="transcript_format 'txt'"):
        TranscriptWriter(str(tmp_path / 'x'), 'txt')
