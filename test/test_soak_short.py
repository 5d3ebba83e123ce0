"""A bounded soak (about 40 s): the pipeline keeps its rate and its memory."""

from camera_caption.tools.soak import soak
import pytest

pytestmark = pytest.mark.slow


def test_short_soak_keeps_rate_and_memory(tiny_model_dir):
    summary = soak(tiny_model_dir, duration=40, rate_hz=10.0, interval=4,
                   warmup=12, max_new_tokens=6, width=320, height=240)
    assert summary['exit_code'] == 0
    assert summary['captions_per_s'] >= 6.0, summary
    # Resident memory over the steady part grows by less than noise.
    assert summary['rss_growth_mb'] < 25.0, summary
    assert not summary['warnings'], summary
