"""
Captions/s and frame-to-caption latency: backend openai vs local.

The same tiny model (the readable tiny BLIP-2 of
:mod:`camera_caption.tools.tiny_server`) is captioned in this process
(backend ``local``, CPU) and through a real ``transformers serve`` on
127.0.0.1 (backend ``openai``), by the captioner's own
:class:`~camera_caption.pipeline.caption_worker.CaptionWorker`, with 1 and
4 simulated cameras publishing 640x480 frames at ``--fps``.  Latency is
from a frame's stamp to its caption, as ``caption_info`` reports it.  No
ROS needed:

    python -m camera_caption.tools.remote_benchmark --seconds 10
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time

import numpy as np


def _cameras(worker, count, fps, stop):
    """Submit frames of ``count`` cameras at ``fps`` until ``stop``."""
    from camera_caption.frames.latest_frame import Frame
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
              for _ in range(count)]
    period = 1.0 / fps
    next_at = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        for i, image in enumerate(images):
            worker.submit(Frame(image, now, f'cam{i}', f'/cam{i}/image_raw'))
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def measure(backend, cameras, seconds, fps, max_new_tokens):
    """Run the worker on ``backend``; return its figures."""
    from camera_caption.pipeline.caption_worker import CaptionWorker
    from camera_caption.pipeline.settings import CaptionSettings
    latencies, errors = [], []
    lock = threading.Lock()

    def on_caption(result):
        with lock:
            latencies.append(time.monotonic() - result.frame.stamp)

    worker = CaptionWorker(backend.caption, on_caption,
                           lambda batch, exc: errors.append(exc),
                           CaptionSettings(rate_hz=1000.0,
                                           max_new_tokens=max_new_tokens))
    stop = threading.Event()
    feeder = threading.Thread(target=_cameras,
                              args=(worker, cameras, fps, stop), daemon=True)
    worker.start()
    feeder.start()
    stop.wait(min(2.0, seconds / 4))               # warm-up, not counted
    with lock:
        latencies.clear()
    started = time.monotonic()
    stop.wait(seconds)
    with lock:
        got = list(latencies)
    elapsed = time.monotonic() - started
    stop.set()
    feeder.join(2)
    worker.stop()
    got.sort()
    return {
        'cameras': cameras, 'captions_per_s': round(len(got) / elapsed, 1),
        'latency_ms_mean': round(1000 * sum(got) / len(got), 1)
        if got else None,
        'latency_ms_p95': round(1000 * got[int(0.95 * (len(got) - 1))], 1)
        if got else None,
        'errors': len(errors), 'frames_not_captioned': worker.not_captioned,
    }


def main(argv=None):
    """Measure both backends with 1 and 4 cameras; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0,
                        help='measured seconds per row (default 10)')
    parser.add_argument('--cameras', type=int, nargs='+', default=[1, 4])
    parser.add_argument('--fps', type=float, default=30.0,
                        help='frames per second per camera (default 30)')
    parser.add_argument('--new-tokens', type=int, default=8)
    parser.add_argument('--max-in-flight', type=int, default=4)
    parser.add_argument('--model-dir', default='',
                        help='readable tiny model (default: built in a '
                        'temporary folder)')
    parser.add_argument('--json', default='', help='also write rows here')
    args = parser.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from camera_caption.engine.local_backend import LocalBackend
    from camera_caption.engine.openai_backend import OpenAIBackend
    from camera_caption.tools.tiny_server import (build_readable_tiny_blip2,
                                                  TinyServer)
    log = logging.getLogger('remote_benchmark')
    folder = tempfile.mkdtemp(prefix='remote_benchmark_')
    model_dir = args.model_dir or build_readable_tiny_blip2(
        os.path.join(folder, 'tiny'))
    rows = []
    local = LocalBackend.create(
        {'model': model_dir, 'device': 'cpu', 'dtype': 'float32',
         'max_new_tokens': args.new_tokens, 'cpu_threads': 0,
         'engine': 'auto', 'prompt': ''}, max(args.cameras), log)
    try:
        for cameras in args.cameras:
            rows.append(dict(backend='local', **measure(
                local, cameras, args.seconds, args.fps, args.new_tokens)))
    finally:
        local.close()
    with TinyServer(model_dir, log_path=os.path.join(folder, 'serve.log')) \
            as server:
        remote = OpenAIBackend.create(
            {'endpoint': server.endpoint, 'remote_model': '',
             'api_key_env': '', 'ca_file': '', 'request_timeout_s': 10.0,
             'max_in_flight': args.max_in_flight, 'image_max_side': 512,
             'jpeg_quality': 90, 'retry_max_s': 1.0},
            max(args.cameras), log)
        try:
            for cameras in args.cameras:
                rows.append(dict(backend='openai', **measure(
                    remote, cameras, args.seconds, args.fps,
                    args.new_tokens)))
        finally:
            remote.close()
    print(f'tiny BLIP-2 on cpu ({os.cpu_count()} cores), {args.new_tokens} '
          f'new tokens, 640x480 frames at {args.fps:g} fps per camera, '
          f'{args.seconds:g} s a row; openai = transformers serve on '
          f'127.0.0.1, max_in_flight {args.max_in_flight}')
    print('| backend | cameras | captions/s | latency mean ms | p95 ms |')
    print('|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['backend']} | {r['cameras']} | {r['captions_per_s']} | "
              f"{r['latency_ms_mean']} | {r['latency_ms_p95']} |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r['captions_per_s'] > 0 for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
