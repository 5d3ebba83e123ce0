"""The one-frame slot, the throttle and the caption worker thread."""

from dataclasses import replace
import threading
import time

from camera_caption.frames.latest_frame import Frame, LatestFrames
from camera_caption.pipeline.caption_worker import CaptionWorker
from camera_caption.pipeline.settings import CaptionSettings
from camera_caption.utilities.throttles import Throttle
import numpy as np
import pytest

pytestmark = pytest.mark.unit


def test_slots_keep_only_the_newest_per_camera_and_count_drops():
    slots = LatestFrames()
    for i in range(5):
        slots.put('cam1', i)
    slots.put('cam2', 'x')
    assert slots.take_all(0) == {'cam1': 4, 'cam2': 'x'}
    assert slots.take_all(0) == {}
    assert slots.received == 6 and slots.dropped == 4
    slots.put('cam1', 9)
    slots.clear()
    assert slots.dropped == 5 and slots.take_all(0) == {}


def test_take_all_waits_for_a_frame_and_close_wakes_waiters():
    slots = LatestFrames()
    threading.Timer(0.05, slots.put, args=('cam', 'x')).start()
    assert slots.take_all(2.0) == {'cam': 'x'}
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.take_all(5.0)))
    waiter.start()
    slots.close()
    waiter.join(1.0)
    assert not waiter.is_alive() and got == [{}]


def test_throttle_spaces_starts_by_one_over_rate():
    now = [100.0]
    throttle = Throttle(4.0, clock=lambda: now[0])
    assert throttle.wait_time() == 0.0
    throttle.mark()
    assert throttle.wait_time() == pytest.approx(0.25)
    now[0] += 0.1
    assert throttle.wait_time() == pytest.approx(0.15)
    now[0] += 0.2
    assert throttle.wait_time() == 0.0
    throttle.rate_hz = 1
    assert throttle.wait_time() == pytest.approx(0.7)


@pytest.mark.parametrize('bad', [0, -1, float('nan')])
def test_throttle_refuses_non_positive_rates(bad):
    with pytest.raises(ValueError, match='rate_hz'):
        Throttle(bad)


def make_worker(settings, caption_fn):
    results, errors = [], []
    worker = CaptionWorker(caption_fn, results.append,
                           lambda frame, exc: errors.append(exc), settings)
    return worker, results, errors


def test_worker_captions_newest_frame_at_the_rate_without_backlog():
    settings = CaptionSettings(rate_hz=5.0, prompt='p', max_new_tokens=3)
    seen = []

    def caption(images, prompt, max_new_tokens, system_prompt=''):
        seen.append((int(images[0][0, 0, 0]), prompt, max_new_tokens))
        time.sleep(0.01)
        return ['frame %d' % images[0][0, 0, 0]]

    worker, results, errors = make_worker(settings, caption)
    worker.start()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 2.0:   # a 100 fps flood
        worker.submit(Frame(np.full((2, 2, 3), i % 256, np.uint8)))
        i += 1
        time.sleep(0.01)
    assert worker.stop(1.0)
    # ~5 per second for 2 s; never more than the rate allows.
    assert 8 <= len(results) <= 11, len(results)
    assert worker.slots.dropped >= i - len(results) - 1
    # Each caption is of a frame newer than the one before.
    values = [v for v, _, _ in seen]
    assert all(b != a for a, b in zip(values, values[1:]))
    assert all(p == 'p' and n == 3 for _, p, n in seen)
    assert results[-1].inference_seconds >= 0.01
    assert not errors


def test_worker_survives_errors_and_reads_settings_live():
    settings = CaptionSettings(rate_hz=50.0, prompt='', max_new_tokens=5)
    calls = []

    def caption(images, prompt, max_new_tokens, system_prompt=''):
        calls.append(prompt)
        if len(calls) == 1:
            raise RuntimeError('CUDA out of memory (simulated)')
        return [prompt or 'plain']

    worker, results, errors = make_worker(settings, caption)
    worker.start()
    frame = Frame(np.zeros((2, 2, 3), np.uint8))
    worker.submit(frame)
    deadline = time.monotonic() + 2
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.submit(frame)
    while not results and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.update(replace(settings, prompt='Question: what? Answer:'))
    worker.submit(frame)
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert isinstance(errors[0], RuntimeError)
    assert [r.text for r in results] == ['plain', 'Question: what? Answer:']


def test_worker_stops_promptly_while_idle():
    worker, results, _ = make_worker(
        CaptionSettings(rate_hz=0.01, max_new_tokens=1), lambda *a, **k: ['x'])
    worker.start()
    worker.submit(Frame(np.zeros((1, 1, 3), np.uint8)))
    deadline = time.monotonic() + 5
    while not results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results                           # now waiting 100 s to the next
    start = time.monotonic()
    assert worker.stop(2.0)
    assert time.monotonic() - start < 0.5
