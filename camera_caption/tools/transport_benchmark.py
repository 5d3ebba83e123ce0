"""
Measure image delivery across processes by image size and QoS.

For each size and subscription reliability it starts the camera node
(test pattern, reliable publisher unless ``--publisher best_effort``) and a
receiver in a second process, as ``ros2 launch`` runs the camera and the
captioner, then prints a table: frames published and received per second,
the share delivered, and the image age at the receiver (now minus
``header.stamp``; mean and 95th percentile).  ``--work-ms`` makes the
receiver spend that long per frame (a consumer slower than the camera),
to show that the camera is never held back.  Fast DDS settings from the
environment apply to both processes, so their effect can be compared:

    python -m camera_caption.tools.transport_benchmark
    python -m camera_caption.tools.transport_benchmark --sizes vga --work-ms 250

Prefix ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` (Jazzy and newer) or
``RMW_IMPLEMENTATION=...`` to measure other transports.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

SIZES = {'vga': (640, 480), '720p': (1280, 720), '1080p': (1920, 1080),
         '4k': (3840, 2160)}
QOS = ('best_effort', 'reliable')


def percentile(values, share):
    """Return the ``share`` (0-1) percentile of ``values`` (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summarize(arrivals, ages, published_per_s, seconds):
    """Figures of one run from the receiver's arrival times and ages."""
    received = len(arrivals) / seconds
    return {
        'published_per_s': None if published_per_s is None
        else round(published_per_s, 1),
        'received_per_s': round(received, 1),
        'delivered': None if not published_per_s
        else round(min(1.0, received / published_per_s), 3),
        'age_ms_mean': None if not ages
        else round(1000 * sum(ages) / len(ages), 1),
        'age_ms_p95': None if not ages
        else round(1000 * percentile(ages, 0.95), 1),
    }


def receive(args):
    """Receiver process: count frames for ``--seconds``; print JSON."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image

    from camera_caption.nodes.ros_qos import image_qos

    rclpy.init()
    node = rclpy.create_node('transport_probe')
    lock = threading.Lock()
    state = {'measuring': False, 'first': threading.Event()}
    arrivals, ages, published = [], [], []

    def on_image(msg):
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        state['first'].set()
        with lock:
            if state['measuring']:
                arrivals.append(now)
                ages.append(now - stamp)
        if args.work_ms:
            time.sleep(args.work_ms / 1000.0)     # a slow consumer

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.endswith('/camera'):
                values = {kv.key: kv.value for kv in status.values}
                with lock:
                    if state['measuring'] and values.get('frames_per_s'):
                        published.append(float(values['frames_per_s']))

    kind = CompressedImage if args.compressed else Image
    topic = 'image_raw/compressed' if args.compressed else 'image_raw'
    node.create_subscription(kind, topic, on_image,
                             image_qos(args.reliability))
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics,
                             10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    result = {'error': 'no frame within 30 s'}
    if state['first'].wait(30.0):
        # Warm-up, then the measurement window (a duration, not a wait
        # for something to happen).
        time.sleep(args.warmup)
        with lock:
            state['measuring'] = True
        time.sleep(args.seconds)
        with lock:
            state['measuring'] = False
            # The first diagnostics figure covers time before the window.
            rate = published[1:] or published
            result = summarize(list(arrivals), list(ages),
                               sum(rate) / len(rate) if rate else None,
                               args.seconds)
    print('RESULT ' + json.dumps(result), flush=True)
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def child_env():
    """Our environment for the children: localhost, a locked domain."""
    from camera_caption.tools.domain_lock import localhost_only, pick_domain_id
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    localhost_only(env)
    if not env.get('ROS_DOMAIN_ID'):
        env['ROS_DOMAIN_ID'] = str(pick_domain_id())
    return env


def measure(width, height, reliability, args, env):
    """Run camera and receiver processes for one configuration."""
    camera = subprocess.Popen(
        [sys.executable, '-m', 'camera_caption.nodes.camera_node', '--ros-args',
         '-p', 'source:=test_pattern', '-p', f'width:={width}',
         '-p', f'height:={height}', '-p', f'fps:={float(args.fps)}',
         '-p', f'reliability:={args.publisher}',
         '-p', f'publish_compressed:={str(args.compressed).lower()}'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    receiver = subprocess.Popen(
        [sys.executable, '-m', 'camera_caption.tools.transport_benchmark',
         '--receiver', '--reliability', reliability,
         '--seconds', str(args.seconds), '--warmup', str(args.warmup),
         '--work-ms', str(args.work_ms)]
        + (['--compressed'] if args.compressed else []),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = receiver.communicate(timeout=args.seconds + 90)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
        camera.send_signal(signal.SIGINT)
        try:
            _, camera_err = camera.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            camera.kill()
            _, camera_err = camera.communicate()
    lines = [line for line in output.splitlines()
             if line.startswith('RESULT ')]
    result = json.loads(lines[-1][7:]) if lines else {
        'error': 'receiver printed no result: ' + output[-300:]}
    if camera.returncode != 0:
        result['error'] = (f'camera exited {camera.returncode}: '
                           + camera_err[-300:])
    result.update(size=f'{width}x{height}',
                  frame_mb=round(width * height * 3 / 1e6, 2),
                  publisher=args.publisher, subscriber=reliability,
                  fps_asked=args.fps, work_ms=args.work_ms,
                  transport='compressed' if args.compressed else 'raw',
                  fastdds_builtin_transports=env.get(
                      'FASTDDS_BUILTIN_TRANSPORTS', ''),
                  rmw=env.get('RMW_IMPLEMENTATION', ''))
    return result


def _cell(value, fmt):
    return '-' if value is None else format(value, fmt)


def print_table(results, out=None):
    """Print the results as a table (on stdout unless ``out``)."""
    out = out or sys.stdout
    print(f'{"size":>9} {"MB":>5} {"pub -> sub QoS":>26} {"pub/s":>6} '
          f'{"recv/s":>6} {"deliv":>6} {"age ms":>7} {"p95 ms":>7}',
          file=out)
    for r in results:
        qos = f'{r["publisher"]} -> {r["subscriber"]}'
        if 'error' in r:
            print(f'{r["size"]:>9} {r["frame_mb"]:5.1f} {qos:>26} '
                  f'error: {r["error"]}', file=out)
            continue
        print(f'{r["size"]:>9} {r["frame_mb"]:5.1f} {qos:>26} '
              f'{_cell(r["published_per_s"], "6.1f")} '
              f'{r["received_per_s"]:6.1f} '
              f'{_cell(r["delivered"], "6.0%")} '
              f'{_cell(r["age_ms_mean"], "7.1f")} '
              f'{_cell(r["age_ms_p95"], "7.1f")}', file=out)


def main(argv=None):
    """Command line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0])
    parser.add_argument('--sizes', nargs='+', choices=sorted(SIZES),
                        default=['vga', '720p', '1080p', '4k'])
    parser.add_argument('--qos', nargs='+', choices=QOS, default=list(QOS),
                        help='subscription reliabilities to measure')
    parser.add_argument('--publisher', choices=QOS, default='reliable',
                        help="the camera's reliability")
    parser.add_argument('--fps', type=float, default=30.0)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--warmup', type=float, default=2.0)
    parser.add_argument('--work-ms', type=float, default=0.0,
                        help='receiver time per frame (a slow consumer)')
    parser.add_argument('--compressed', action='store_true',
                        help='JPEG on image_raw/compressed instead of raw')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--receiver', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--reliability', default='reliable',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        return receive(args)
    env = child_env()
    transports = env.get('FASTDDS_BUILTIN_TRANSPORTS', 'DEFAULT')
    print(f'camera -> receiver in two processes, {args.fps:g} fps asked, '
          f'{args.seconds:g} s per row, rmw '
          f'{env.get("RMW_IMPLEMENTATION") or "default"}, '
          f'FASTDDS_BUILTIN_TRANSPORTS={transports}'
          + (f', receiver {args.work_ms:g} ms per frame'
             if args.work_ms else ''), flush=True)
    results = []
    for name in args.sizes:
        for reliability in args.qos:
            results.append(measure(*SIZES[name], reliability, args, env))
            print_table(results[-1:], out=sys.stderr)
    print_table(results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 1 if any('error' in r for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
