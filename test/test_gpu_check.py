"""scripts/gpu_check.sh runs end to end (--cpu-smoke: tiny model, CPU)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_cpu_smoke_writes_every_part(tmp_path):
    out = tmp_path / 'gpu_check.json'
    env = dict(os.environ, PYTHON=sys.executable,
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH',
                                                             ''))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'scripts',
                                                'gpu_check.sh'),
                           str(out), '--cpu-smoke'], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report['errors'] == [] and report['mode'] == 'cpu-smoke'
    assert report['versions']['torch'] and report['copy_bandwidth_gb_s'] > 0
    rows = report['benchmark']
    assert [r['batch'] for r in rows] == [1, 2]
    for r in rows:
        assert r['engine'] == 'fast' and r['dtype'] == 'float16'
        assert r['token_agreement'] == 1.0
        assert r['fast_pct_of_floor'] == 100 * r['fast_ms_per_caption'] / (
            r['floor_decode_ms_per_caption']
            + r['floor_encoder_ms_per_caption'])
    node = report['node']
    assert node['exit_code'] == 0, node['log_tail']
    assert node['engine'] == node['engine_diagnostics'] == 'fast'
    assert node['captions'] >= 2 and node['captions_per_s'] > 0
    assert 0 < node['latency_p50_s'] <= node['latency_max_s']
    assert node['first_caption_after_weights_s'] > 0
    assert set(report['targets_met']) == {
        'batch1_ms_per_caption', 'batch1_pct_of_floor',
        'batch1_speedup_vs_hf', 'batch8_captions_per_s',
        'batch32_captions_per_s', 'first_caption_after_weights_s'}
