"""
captioner node: newest image in, BLIP-2 caption out on ``caption``.

The subscription (depth 1) converts each ``sensor_msgs/Image`` (or JPEG
``sensor_msgs/CompressedImage``) and drops it into the worker's one-frame
slot; the worker thread captions the newest frame at most ``rate_hz`` times
a second and publishes ``std_msgs/String``.  Inference never runs on the
executor thread.  A bad frame is skipped with a rate-limited warning that
names the field at fault; a failed inference is logged and the next frame
is captioned.

With ``reliability: auto`` the subscription follows the publishers: it is
reliable when every publisher on the topic offers reliable, best effort
otherwise (see :mod:`camera_caption.pipeline.qos_choice`); the graph is read once a
second and the subscription recreated, with one log line, when the choice
changes.
"""

import json
import sys

from camera_caption.engine.caption_engine import CaptionEngine, ModelLoadError
from camera_caption.pipeline.caption_stats import RateWindow, Stat
from camera_caption.pipeline.caption_worker import CaptionWorker
from camera_caption.frames.image_conversion import (compressed_to_rgb,
                                             ImageConversionError)
from camera_caption.frames.latest_frame import Frame
from camera_caption.pipeline.log_throttle import LogThrottle
from camera_caption.nodes.message_conversion import image_msg_to_rgb
from camera_caption.nodes.node_runner import run_node
from camera_caption.parameters import (caption_topics, CAPTIONER_PARAMETERS,
                                       image_topic_list)
from camera_caption.pipeline.qos_choice import (BEST_EFFORT, ReliabilityChooser,
                                       starvation_warning)
from camera_caption.nodes.ros_diagnostics import DiagnosticsPublisher, OK, WARN
from camera_caption.nodes.ros_parameters import (declare_parameters, image_qos,
                                           offered_reliability,
                                           watch_parameters)
from rclpy.node import Node
try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool


class CaptionerNode(Node):
    """Caption the newest frame of ``image_raw`` on ``caption``."""

    # Why engine 'auto' fell back to generate() ('' when it did not).
    fast_fallback = ''

    def __init__(self, engine=None, **kwargs):
        self.worker = None     # set first: destroy_node() runs on failure too
        super().__init__('captioner', **kwargs)
        self.params = declare_parameters(self, CAPTIONER_PARAMETERS)
        p = self.params
        log = self.get_logger()
        self.topics = caption_topics(image_topic_list(p['image_topics']))
        if engine is None:
            log.info(f"loading model '{p['model']}' (device {p['device']}, "
                     f'dtype {p["dtype"]})')
            engine = CaptionEngine.load(p['model'], p['device'], p['dtype'],
                                        p['max_new_tokens'],
                                        p['cpu_threads'])
            log.info(f'weights loaded in {engine.load_seconds:.1f} s')
            self.fast_fallback = self._enable_fast_path(engine, p)
        self.engine = engine
        log.info(f'model ready: {engine.describe()}')
        self._log_throttle = LogThrottle(5.0)
        self.published = 0
        self.skipped_frames = 0
        self.frames_in = RateWindow()
        self.frames_in_by_topic = {t: RateWindow() for t in self.topics}
        self.captions_out = RateWindow()
        self.latency = Stat()
        self.inference = Stat()
        self._dropped_seen = 0
        self.publishers_by_topic = {}
        self.subscriptions_by_topic = {}
        self.reliability_by_topic = {}
        self.choosers = {}
        for topic, caption_topic in self.topics.items():
            self.publishers_by_topic[topic] = (
                self.create_publisher(String, caption_topic, 10),
                self.create_publisher(String, caption_topic + '_info', 10))
            # auto starts best effort, which matches any publisher, until
            # the graph says more (right below, then once a second).
            self._subscribe(topic, BEST_EFFORT if p['reliability'] == 'auto'
                            else p['reliability'])
            self.choosers[topic] = ReliabilityChooser(
                self.subscriptions_by_topic[topic].topic_name,
                p['reliability'])
        self._follow_publishers()
        self.graph_timer = self.create_timer(1.0, self._follow_publishers)
        self.worker = CaptionWorker(engine.caption, self._publish,
                                    self._caption_failed, p)
        watch_parameters(self, CAPTIONER_PARAMETERS, p)
        self.enable_service = self.create_service(SetBool, '~/enable',
                                                  self._on_enable)
        self.diagnostics = DiagnosticsPublisher(self, engine.model_id,
                                                self._diagnostics)
        self.worker.start()
        routes = ', '.join(
            f'{self.subscriptions_by_topic[t].topic_name} -> '
            f'{self.publishers_by_topic[t][0].topic_name}'
            for t in self.topics)
        log.info(f'captioning {routes} at <= {p["rate_hz"]:g} Hz')

    def _subscribe(self, topic, reliability):
        """(Re)create the image subscription of ``topic``."""
        old = self.subscriptions_by_topic.pop(topic, None)
        if old is not None:
            self.destroy_subscription(old)
        qos = image_qos(reliability)
        events = None
        if self.params['reliability'] == 'auto':
            # A best-effort publisher meeting our reliable subscription:
            # the next graph read (within a second) switches to best_effort
            # and says so, instead of rclpy's 'incompatible QoS' warning.
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda event: None)
        if self.params['image_transport'] == 'compressed':
            sub = self.create_subscription(
                CompressedImage, topic + '/compressed',
                lambda msg, t=topic: self._on_compressed(msg, t), qos,
                event_callbacks=events)
        else:
            sub = self.create_subscription(
                Image, topic, lambda msg, t=topic: self._on_image(msg, t),
                qos, event_callbacks=events)
        self.subscriptions_by_topic[topic] = sub
        self.reliability_by_topic[topic] = reliability

    def _follow_publishers(self):
        """Read what the publishers offer; resubscribe when auto says so."""
        for topic, chooser in self.choosers.items():
            offered = [offered_reliability(info.qos_profile) for info in
                       self.get_publishers_info_by_topic(chooser.topic)]
            change = chooser.update(offered)
            if change is None:
                continue
            choice, line = change
            if choice != self.reliability_by_topic[topic]:
                self._subscribe(topic, choice)
            self.get_logger().info(line)

    def _enable_fast_path(self, engine, p):
        """Engine auto/fast: the fast path, or one WARN line (or exit)."""
        log = self.get_logger()
        if p['engine'] == 'generate':
            engine.fallback_reason = 'engine: generate'
            return ''
        reason = engine.enable_fast_path(max_batch=len(self.topics),
                                         prompt=p['prompt'], log=log.info)
        if not reason:
            log.info(f'fast path ready (warm-up {engine.warmup_seconds:.1f}'
                     f' s, self-check passed, batch <= {len(self.topics)})')
        elif p['engine'] == 'fast':
            raise ModelLoadError(f'engine fast: the fast path cannot run on '
                                 f"'{p['model']}': {reason}")
        else:
            log.warning(f'fast path unavailable, captioning with the slower '
                        f'generate(): {reason}')
        return reason

    def _on_image(self, msg, topic):
        try:
            image = image_msg_to_rgb(msg)
        except ImageConversionError as exc:
            self._skip(exc)
            return
        self._submit(image, msg.header, topic)

    def _on_compressed(self, msg, topic):
        try:
            image = compressed_to_rgb(msg.format, msg.data)
        except ImageConversionError as exc:
            self._skip(exc)
            return
        self._submit(image, msg.header, topic)

    def _submit(self, image, header, topic):
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        self.frames_in.add()
        self.frames_in_by_topic[topic].add()
        self.worker.submit(Frame(image, stamp, header.frame_id, topic))

    def _skip(self, exc):
        self.skipped_frames += 1
        self._warn(exc.key, f'frame skipped: {exc}')

    def _publish(self, result):
        if not self.context.ok():
            return
        frame = result.frame
        publisher, info_publisher = self.publishers_by_topic[frame.topic]
        publisher.publish(String(data=result.text))
        now = self.get_clock().now().nanoseconds * 1e-9
        # Frame-to-caption latency, from the image's header stamp.
        self.latency.add(now - frame.stamp)
        self.inference.add(result.inference_seconds)
        info_publisher.publish(String(data=json.dumps({
            'stamp': frame.stamp, 'frame_id': frame.frame_id,
            'image_topic': self.subscriptions_by_topic[frame.topic]
            .topic_name, 'caption': result.text,
            'inference_s': round(result.inference_seconds, 4),
            'latency_s': round(self.latency.last, 4)}, ensure_ascii=False)))
        self.captions_out.add()
        self.published += 1

    @property
    def last_latency(self):
        """Image stamp to caption publish of the last caption (seconds)."""
        return self.latency.last

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enable', value=request.data)])
        response.success = self.params['enable'] == request.data
        response.message = 'captioning ' + (
            'enabled' if self.params['enable'] else 'paused')
        self.get_logger().info(response.message)
        return response

    def _diagnostics(self):
        p, worker, engine = self.params, self.worker, self.engine
        dropped = worker.slots.dropped - self._dropped_seen
        self._dropped_seen = worker.slots.dropped
        frames_per_s = self.frames_in.per_second()
        values = {
            'enabled': p['enable'],
            'frames_in_per_s': frames_per_s,
            'captions_per_s': self.captions_out.per_second(),
            'frames_dropped_by_throttle': dropped,
            'frames_dropped_total': worker.slots.dropped,
            'frames_skipped_bad': self.skipped_frames,
            'captions_total': self.published,
            'inference_errors': worker.errors,
            'latency_last_s': self.latency.last,
            'latency_mean_s': self.latency.mean,
            'inference_last_s': self.inference.last,
            'inference_mean_s': self.inference.mean,
            'scene_gate_passed': worker.gate_passed,
            'scene_gate_skipped': worker.gate_skipped,
            'scene_difference_last': max(
                (g.last_difference for g in worker.gates.values()
                 if g.last_difference is not None), default=None),
            'dedupe_suppressed': worker.dedupe_suppressed,
            'batch_size_last': worker.last_batch_size,
            'image_topics': ','.join(
                s.topic_name for s in self.subscriptions_by_topic.values()),
            'engine': 'fast' if engine.fast is not None else
            f'generate ({engine.fallback_reason})',
            'rate_hz': p['rate_hz'],
            'reliability': ','.join(
                self.reliability_by_topic[t] for t in self.topics),
            'publishers_offer': ';'.join(
                ','.join(c.offered) or '-' for c in self.choosers.values()),
            'model': engine.model_id, 'device': engine.device,
            'dtype': str(engine.dtype).replace('torch.', ''),
            'gpu_memory_mb': engine.gpu_memory_mb(),
        }
        starved = [starvation_warning(
            self.choosers[t].topic, self.frames_in_by_topic[t].per_second(),
            p['rate_hz'], self.reliability_by_topic[t],
            self.choosers[t].offered) for t in self.topics]
        starved = [line for line in starved if line]
        level, message = OK, 'captioning' if p['enable'] else 'paused'
        if frames_per_s == 0 and p['enable']:
            level, message = WARN, 'no frames arriving on ' + ', '.join(
                s.topic_name for s in self.subscriptions_by_topic.values())
        elif starved and p['enable']:
            level, message = WARN, '; '.join(starved)
        elif (self.latency.mean or 0) > p['latency_warn_s']:
            level, message = WARN, (
                f'mean latency {self.latency.mean:.2f} s exceeds '
                f'latency_warn_s {p["latency_warn_s"]:g} s')
        elif self.fast_fallback:
            level, message = WARN, ('fast path unavailable: '
                                    + self.fast_fallback)
        return level, message, values

    def _caption_failed(self, frame, exc):
        self._warn(('inference', type(exc).__name__),
                   f'caption failed, frame skipped: '
                   f'{type(exc).__name__}: {exc}')

    def _warn(self, key, message):
        allowed, suppressed = self._log_throttle.should_log(key)
        if allowed:
            self.get_logger().warning(
                self._log_throttle.annotate(message, suppressed))

    def destroy_node(self):
        """Stop and join the worker before the node goes."""
        if self.worker is not None:              # None: __init__ failed
            self.worker.stop()
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run camera_caption captioner_node``."""
    sys.exit(run_node(CaptionerNode, args))


if __name__ == '__main__':
    main()
