"""
Soak the whole pipeline and watch its memory.

Runs ``python -m camera_caption`` (camera test pattern -> captioner ->
logger, one process) for ``--duration`` seconds at a high caption rate,
samples its resident memory (and the GPU memory it holds, when
nvidia-smi is there) every ``--interval`` seconds, and prints the
start/end/max figures.  Without ``--model`` it builds the tiny offline
BLIP-2 first.  Exits 1 when memory grew by more than ``--max-growth-mb``:
the mean of the last quarter of the samples after ``--warmup`` seconds
(at most 12 samples) against the mean of the first quarter.

    python -m camera_caption.tools.soak --duration 1800 --rate-hz 20
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time


def rss_mb(pid):
    """Resident memory of ``pid`` (MiB), from /proc."""
    with open(f'/proc/{pid}/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def gpu_mb(pid):
    """GPU memory held by ``pid`` (MiB) per nvidia-smi, or None."""
    try:
        out = subprocess.run(
            ['nvidia-smi', '--query-compute-apps=pid,used_memory',
             '--format=csv,noheader,nounits'], capture_output=True,
            text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(',')]
        if len(fields) == 2 and fields[0] == str(pid):
            return float(fields[1])
    return 0.0


def _count_captions(stream, counter):
    for line in stream:
        if 'caption: ' in line:
            counter[0] += 1
        elif 'WARN' in line or 'ERROR' in line or 'FATAL' in line:
            counter[1].append(line.rstrip())


def soak(model, duration, rate_hz, interval, warmup, max_new_tokens=8,
         width=640, height=480, out=sys.stdout):
    """Run the soak; return a summary dict."""
    from camera_caption.tools.domain_lock import localhost_only, pick_domain_id
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    localhost_only(env)
    if 'ROS_DOMAIN_ID' not in env:
        env['ROS_DOMAIN_ID'] = str(pick_domain_id())
    cmd = [sys.executable, '-m', 'camera_caption', '--source',
           'test_pattern', '--model', model, '--rate_hz', str(rate_hz),
           '--max_new_tokens', str(max_new_tokens), '--ros-args', '-p',
           f'camera:width:={width}', '-p', f'camera:height:={height}']
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    counter = [0, []]
    reader = threading.Thread(target=_count_captions,
                              args=(proc.stdout, counter), daemon=True)
    reader.start()
    samples = []
    start = time.monotonic()
    print(f'{"t_s":>7} {"rss_mb":>8} {"gpu_mb":>8} {"captions":>9}',
          file=out)
    try:
        while time.monotonic() - start < duration:
            time.sleep(interval)
            if proc.poll() is not None:
                raise RuntimeError(f'pipeline exited with {proc.returncode}')
            t = time.monotonic() - start
            sample = {'t': round(t, 1), 'rss_mb': round(rss_mb(proc.pid), 1),
                      'gpu_mb': gpu_mb(proc.pid), 'captions': counter[0]}
            samples.append(sample)
            gpu = '-' if sample['gpu_mb'] is None else f'{sample["gpu_mb"]:.0f}'
            print(f'{sample["t"]:7.0f} {sample["rss_mb"]:8.1f} {gpu:>8} '
                  f'{sample["captions"]:9d}', file=out, flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    reader.join(5)
    return summarize(samples, warmup, rate_hz, proc.returncode, counter[1])


def summarize(samples, warmup, rate_hz, exit_code, warnings):
    """Start/end/max memory after the warm-up, and the caption rate."""
    steady = [s for s in samples if s['t'] >= warmup] or samples
    window = max(1, min(len(steady) // 4, 12))
    first = sum(s['rss_mb'] for s in steady[:window]) / window
    last = sum(s['rss_mb'] for s in steady[-window:]) / window
    span = steady[-1]['t'] - steady[0]['t'] or 1.0
    summary = {
        'samples': len(samples),
        'rss_start_mb': steady[0]['rss_mb'], 'rss_end_mb': steady[-1]['rss_mb'],
        'rss_max_mb': max(s['rss_mb'] for s in steady),
        'rss_growth_mb': round(last - first, 1),
        'captions': samples[-1]['captions'],
        'captions_per_s': round(
            (steady[-1]['captions'] - steady[0]['captions']) / span, 2),
        'rate_hz_asked': rate_hz, 'exit_code': exit_code,
        'warnings': warnings[:10],
    }
    gpus = [s['gpu_mb'] for s in steady if s['gpu_mb'] is not None]
    if gpus:
        summary.update(gpu_start_mb=gpus[0], gpu_end_mb=gpus[-1],
                       gpu_max_mb=max(gpus))
    return summary


def main(argv=None):
    """Command line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', help='model id or directory (default: '
                        'build the tiny offline BLIP-2)')
    parser.add_argument('--duration', type=float, default=60.0)
    parser.add_argument('--rate-hz', type=float, default=20.0)
    parser.add_argument('--interval', type=float, default=5.0)
    parser.add_argument('--warmup', type=float, default=15.0)
    parser.add_argument('--max-growth-mb', type=float, default=50.0)
    parser.add_argument('--json', help='also write the summary here')
    args = parser.parse_args(argv)
    model = args.model
    if not model:
        from camera_caption.tools.tiny_blip2 import build_tiny_blip2
        model = build_tiny_blip2(tempfile.mkdtemp(prefix='tiny_blip2_'),
                                 weight_scale=4.0)
    summary = soak(model, args.duration, args.rate_hz, args.interval,
                   args.warmup)
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=2)
    return 0 if summary['rss_growth_mb'] <= args.max_growth_mb else 1


if __name__ == '__main__':
    sys.exit(main())
