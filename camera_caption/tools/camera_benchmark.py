"""
Measure the camera node's publishing cost and rate.

Runs the real camera node (test pattern) at the asked size, encoding and
rate, with a subscriber in the same process, and prints per-frame
capture cost (the source's read) and publish cost (conversion + message
build + publish; mean and 95th percentile), the achieved publish
and receive rates, and the same with no pacing (``fps`` 1000) to show the
headroom.  Plain rclpy, so it runs with or without a ROS install:

    python -m camera_caption.tools.camera_benchmark --width 1280 --height 720
"""

import argparse
import json
import os
import sys
import threading
import time


def measure(width, height, fps, encoding, seconds, domain):
    """Run one configuration; return its figures."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from camera_caption.nodes.camera_node import CameraNode
    from camera_caption.nodes.ros_qos import image_qos

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    camera = CameraNode(context=context, parameter_overrides=[
        Parameter('source', value='test_pattern'),
        Parameter('width', value=width), Parameter('height', value=height),
        Parameter('fps', value=float(fps)),
        Parameter('encoding', value=encoding)])
    costs = []
    publish = camera.publish_frame

    def timed(frame):
        start = time.perf_counter()
        publish(frame)
        costs.append(time.perf_counter() - start)

    camera.publish_frame = timed
    reads = []
    read = camera.source.read

    def timed_read():
        start = time.perf_counter()
        frame = read()
        reads.append(time.perf_counter() - start)
        return frame

    camera.source.read = timed_read
    sink = rclpy.create_node('benchmark_sink', context=context)
    received = [0]
    sink.create_subscription(Image, 'image_raw',
                             lambda msg: received.__setitem__(
                                 0, received[0] + 1), image_qos('reliable'))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(camera)
    executor.add_node(sink)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    time.sleep(1.0)                                  # discovery, warm-up
    costs.clear()
    reads.clear()
    published0, received0 = camera.published, received[0]
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    published = camera.published - published0
    got = received[0] - received0
    executor.shutdown()
    spinner.join(2.0)
    camera.destroy_node()
    sink.destroy_node()
    context.try_shutdown()
    ordered = sorted(costs) or [0.0]
    return {
        'width': width, 'height': height, 'encoding': encoding,
        'fps_asked': fps, 'published_per_s': round(published / elapsed, 1),
        'received_per_s': round(got / elapsed, 1),
        'publish_ms_mean': round(1000 * sum(ordered) / len(ordered), 2),
        'publish_ms_p95': round(
            1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
        'capture_ms_mean': round(1000 * sum(reads) / max(1, len(reads)), 2),
        'frame_mb': round(width * height * 3 / 2**20, 2),
    }


def main(argv=None):
    """Command line entry."""
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0])
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--height', type=int, default=720)
    parser.add_argument('--fps', type=float, default=30.0)
    parser.add_argument('--encoding', default='rgb8')
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    from camera_caption.tools.domain_lock import localhost_only, pick_domain_id
    localhost_only()
    domain = int(os.environ.get('ROS_DOMAIN_ID') or pick_domain_id())
    results = [measure(args.width, args.height, fps, args.encoding,
                       args.seconds, domain)
               for fps in (args.fps, 1000.0)]
    print(f'{"size":>10} {"enc":>5} {"asked":>6} {"pub/s":>7} {"recv/s":>7} '
          f'{"capture ms":>10} {"publish ms":>10} {"p95 ms":>7}')
    for r in results:
        print(f'{r["width"]:>5}x{r["height"]:<4} {r["encoding"]:>5} '
              f'{r["fps_asked"]:6g} {r["published_per_s"]:7.1f} '
              f'{r["received_per_s"]:7.1f} {r["capture_ms_mean"]:10.2f} '
              f'{r["publish_ms_mean"]:10.2f} '
              f'{r["publish_ms_p95"]:7.2f}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
