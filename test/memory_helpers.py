"""Builders for the caption memory tests: records and caption_info JSON."""

import json

from camera_caption.memory.records import CaptionRecord

T0 = 1796300000.0          # 2026-12-03, an image stamp in seconds


def record(caption, stamp, camera='/image_raw', **extra):
    """Return a CaptionRecord of ``caption`` at ``T0 + stamp``."""
    return CaptionRecord(stamp=T0 + stamp, camera=camera, caption=caption,
                         **extra)


def info_json(caption, stamp, camera='/image_raw', **extra):
    """Return a caption_info JSON as the captioner publishes it."""
    info = {'stamp': stamp, 'frame_id': 'camera', 'image_topic': camera,
            'caption': caption, 'inference_s': 0.01, 'latency_s': 0.02,
            'model': 'demo', 'family': 'blip-2', 'model_type': 'blip-2',
            'input': 'still', 'engine': 'fast'}
    info.update(extra)
    return json.dumps(info, ensure_ascii=False)
