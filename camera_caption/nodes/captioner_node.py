"""
captioner node: newest image in, caption out on ``caption``.

A lifecycle node, as heavy ROS 2 nodes are: *configure* opens the
captioning backend (loads the model) and creates the publishers,
*activate* subscribes to the images and starts the worker, *deactivate*
stops captioning but keeps the model loaded, *cleanup* frees it (GPU
memory included).  With ``autostart`` (the default) it configures and
activates itself at start, so ``ros2 run`` and ``ros2 launch`` caption at
once and ``ros2 lifecycle get /captioner`` says ``active``.

While active, the subscription (depth 1) converts each
``sensor_msgs/Image`` (or ``sensor_msgs/CompressedImage``) and drops it
into the worker's slot for its camera; the worker thread captions the
newest frames at most ``rate_hz`` times a second, off the executor thread.
A bad frame is skipped with a rate-limited warning that names the field at
fault; a failed inference is logged and the next batch is captioned.

With ``reliability: auto`` the subscription follows the publishers: it is
reliable when every publisher on the topic offers reliable, best effort
otherwise (see :mod:`camera_caption.pipeline.qos_choice`); the graph is
read once a second and the subscription recreated, with one log line, when
the choice changes.
"""

import json
import time

from camera_caption.contract.parameters import (caption_topics,
                                                CAPTIONER_PARAMETERS,
                                                image_topic_list)
from camera_caption.engine.backend import open_backend
from camera_caption.frames.caption_overlay import CaptionOverlay
from camera_caption.frames.image_conversion import (compressed_to_rgb,
                                                    ImageConversionError)
from camera_caption.frames.latest_frame import Frame
from camera_caption.nodes.message_conversion import image_msg_to_rgb
from camera_caption.nodes.node_runner import exit_now, run_node, START_ERRORS
from camera_caption.nodes.ros_diagnostics import DiagnosticsPublisher, OK, WARN
from camera_caption.nodes.ros_parameters import (declare_parameters, image_qos,
                                                 offered_reliability,
                                                 watch_parameters)
from camera_caption.pipeline.caption_events import EventMatcher
from camera_caption.pipeline.caption_stats import CaptionerFigures
from camera_caption.pipeline.caption_worker import CaptionWorker
from camera_caption.pipeline.qos_choice import BEST_EFFORT, ReliabilityChooser
from camera_caption.pipeline.question_queue import QuestionQueue
from camera_caption.pipeline.settings import CaptionSettings
from camera_caption.utilities.jpeg import encode_jpeg
from camera_caption.utilities.throttles import LogThrottle
try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


class CaptionerNode(LifecycleNode):
    """Caption the newest frame of ``image_raw`` on ``caption``."""

    node_name = 'captioner'   # also what start-up errors are logged as

    def __init__(self, backend=None, **kwargs):
        """
        Declare the parameters; with ``autostart``, configure and activate.

        ``backend`` (a :class:`~camera_caption.engine.backend.
        CaptionBackend`) is used instead of opening the one the parameters
        name, and is not closed by cleanup: the caller owns it.
        """
        # Set first: destroy_node() also runs when __init__ failed.
        self.worker = self.backend = self.graph_timer = None
        self.question_subscription = None
        self._given_backend = backend
        self.publishers_by_topic = {}
        self.subscriptions_by_topic = {}
        self.reliability_by_topic = {}
        self.choosers = {}
        super().__init__('captioner', **kwargs)
        self.params = declare_parameters(self, CAPTIONER_PARAMETERS)
        p = self.params
        self.settings = CaptionSettings.from_values(p)
        self.topics = caption_topics(image_topic_list(p['image_topics']))
        self._warn = LogThrottle(5.0).bound(self.get_logger().warning)
        self.figures = CaptionerFigures(self.topics)
        self.events = EventMatcher(p['watch'], p['event_holdoff_s'])
        self.questions = QuestionQueue(p['question_queue_size'])
        self.overlay = CaptionOverlay(self.get_logger().warning)
        self.configure_error = None
        self.lifecycle_state = 'unconfigured'
        watch_parameters(self, CAPTIONER_PARAMETERS, p, self._on_params)
        self.enable_service = self.create_service(SetBool, '~/enable',
                                                  self._on_enable)
        self.diagnostics = DiagnosticsPublisher(self, p['model'],
                                                self._diagnostics)
        if p['autostart']:
            self.trigger_configure()
            if self.configure_error is not None:
                raise self.configure_error   # one line, exit 1 (run_node)
            self.trigger_activate()
        else:
            self.get_logger().info(
                'unconfigured (autostart is false): ros2 lifecycle set '
                f'{self.get_fully_qualified_name()} configure, then activate')

    # -- lifecycle -----------------------------------------------------

    def on_configure(self, state):
        """Open the backend (load the model) and create the publishers."""
        log = self.get_logger()
        self.configure_error = None
        try:
            self.backend = self._given_backend or open_backend(
                self.params, len(self.topics), log)
        except Exception as exc:  # noqa: B902 - reported, then unconfigured
            self.configure_error = exc
            if not self.params['autostart']:
                log.error(str(exc) if isinstance(exc, START_ERRORS) else
                          f'configure failed: {type(exc).__name__}: {exc}')
            return FAILURE
        for topic, caption_topic in self.topics.items():
            self.publishers_by_topic[topic] = {
                name: self.create_publisher(String, caption_topic + suffix,
                                            10)
                for name, suffix in (('caption', ''), ('info', '_info'),
                                     ('event', '_event'))}
            # Depth 1: a viewer wants the newest picture, not a backlog.
            self.publishers_by_topic[topic].update(
                image=self.create_publisher(Image, caption_topic + '_image',
                                            1),
                image_compressed=self.create_publisher(
                    CompressedImage, caption_topic + '_image/compressed', 1))
            answer_topic = caption_topic[:-len('caption')] + 'answer'
            self.publishers_by_topic[topic].update(
                answer=self.create_publisher(String, answer_topic, 10),
                answer_info=self.create_publisher(
                    String, answer_topic + '_info', 10))
        log.info(f'model ready: {self.backend.describe()}')
        self.lifecycle_state = 'inactive'
        return SUCCESS

    def on_activate(self, state):
        """Subscribe to the images and start captioning."""
        p = self.params
        for topic in self.topics:
            # auto starts best effort, which matches any publisher, until
            # the graph says more (right below, then once a second).
            self._subscribe(topic, BEST_EFFORT if p['reliability'] == 'auto'
                            else p['reliability'])
            self.choosers[topic] = ReliabilityChooser(
                self.subscriptions_by_topic[topic].topic_name,
                p['reliability'])
        self._follow_publishers()
        self.graph_timer = self.create_timer(1.0, self._follow_publishers)
        self.worker = CaptionWorker(self.backend.caption, self._publish,
                                    self._caption_failed, self.settings,
                                    questions=self.questions,
                                    on_answer=self._publish_answer,
                                    cancel_fn=self.backend.cancel,
                                    prepare_fn=self.backend.prepare)
        self.worker.start()
        self.question_subscription = self.create_subscription(
            String, 'question', self._on_question, 10)
        routes = ', '.join(
            f'{self.subscriptions_by_topic[t].topic_name} -> '
            f'{self.publishers_by_topic[t]["caption"].topic_name}'
            for t in self.topics)
        self.get_logger().info(
            f'captioning {routes} at <= {self.settings.rate_hz:g} Hz')
        self.lifecycle_state = 'active'
        return SUCCESS

    def on_deactivate(self, state):
        """Stop captioning; the model stays loaded."""
        self._stop_captioning()
        self.get_logger().info('inactive: captioning stopped, model loaded')
        self.lifecycle_state = 'inactive'
        return SUCCESS

    def on_cleanup(self, state):
        """Free the model (and its GPU memory) and the publishers."""
        self._release()
        self.get_logger().info('unconfigured: model unloaded')
        self.lifecycle_state = 'unconfigured'
        return SUCCESS

    def on_shutdown(self, state):
        """Stop and free everything."""
        self._stop_captioning()
        self._release()
        self.lifecycle_state = 'finalized'
        return SUCCESS

    def _stop_captioning(self):
        if self.worker is not None:   # kept: its figures stay readable
            self.worker.stop()
        if self.graph_timer is not None:
            self.destroy_timer(self.graph_timer)
            self.graph_timer = None
        if self.question_subscription is not None:
            self.destroy_subscription(self.question_subscription)
            self.question_subscription = None
        for sub in self.subscriptions_by_topic.values():
            self.destroy_subscription(sub)
        self.subscriptions_by_topic.clear()
        self.reliability_by_topic.clear()
        self.choosers.clear()

    def _release(self):
        for publishers in self.publishers_by_topic.values():
            for publisher in publishers.values():
                self.destroy_publisher(publisher)
        self.publishers_by_topic.clear()
        backend, self.backend = self.backend, None
        if backend is not None and backend is not self._given_backend:
            backend.close()

    # -- images in -----------------------------------------------------

    def _subscribe(self, topic, reliability):
        """(Re)create the image subscription of ``topic``."""
        old = self.subscriptions_by_topic.get(topic)
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
        if old is not None:
            self.destroy_subscription(old)

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
        worker = self.worker
        if worker is None or self.lifecycle_state != 'active':
            return                        # deactivated meanwhile
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        self.figures.frame_in(topic)
        try:
            worker.submit(Frame(image, stamp, header.frame_id, topic,
                                header))
        except Exception as exc:  # noqa: B902 - prepare() failed: skip it
            self.figures.frame_skipped()
            self._warn(('prepare', type(exc).__name__), 'frame skipped, '
                       f'clip preparation failed: {type(exc).__name__}: '
                       f'{exc}')

    def _skip(self, exc):
        self.figures.frame_skipped()
        self._warn(exc.key, f'frame skipped: {exc}')

    # -- captions out --------------------------------------------------

    def _publish(self, result):
        frame = result.frame
        publishers = self.publishers_by_topic.get(frame.topic)
        if publishers is None or not self.context.ok():
            return
        publishers['caption'].publish(String(data=result.text))
        now = self.get_clock().now().nanoseconds * 1e-9
        latency = now - frame.stamp        # from the image's header stamp
        self.figures.caption_out(latency, result.inference_seconds)
        camera = self._camera_name(frame.topic)
        info = {'stamp': frame.stamp, 'frame_id': frame.frame_id,
                'image_topic': camera, 'caption': result.text,
                'inference_s': round(result.inference_seconds, 4),
                'latency_s': round(latency, 4)}
        if result.clip_frames:
            info.update(clip_first_stamp=result.clip_first,
                        clip_last_stamp=result.clip_last,
                        clip_frames=result.clip_frames)
        # ensure_ascii=False: Japanese stays readable in ros2 topic echo.
        publishers['info'].publish(String(data=json.dumps(
            info, ensure_ascii=False)))
        self._publish_overlay(publishers, frame, result.text)
        for pattern in self.events.match(frame.topic, result.text,
                                         time.monotonic()):
            publishers['event'].publish(String(data=json.dumps({
                'pattern': pattern, 'caption': result.text,
                'camera': camera, 'stamp': frame.stamp},
                ensure_ascii=False)))
            self.get_logger().info(
                f'caption_event {pattern!r} on {camera}: {result.text}')

    def _publish_overlay(self, publishers, frame, text):
        """caption_image(/compressed), drawn only while someone listens."""
        raw = publishers['image'].get_subscription_count() > 0
        jpeg = publishers['image_compressed'].get_subscription_count() > 0
        if not (raw or jpeg) or frame.header is None:
            return
        drawn = self.overlay.render(frame.image, text)
        if raw:
            height, width = drawn.shape[:2]
            publishers['image'].publish(Image(
                header=frame.header, height=height, width=width,
                encoding='rgb8', step=width * 3, data=drawn.tobytes()))
        if jpeg:
            data = encode_jpeg(drawn, 80)
            if data is not None:
                publishers['image_compressed'].publish(CompressedImage(
                    header=frame.header, format='rgb8; jpeg compressed bgr8',
                    data=data))

    def _camera_name(self, topic):
        """Full name of a camera's image topic (as subscribed)."""
        subscription = self.subscriptions_by_topic.get(topic)
        return subscription.topic_name if subscription else topic

    # -- questions -----------------------------------------------------

    def _on_question(self, msg):
        text = msg.data.strip()
        if not text:
            self._warn('question', f"question ignored: field 'data' = "
                       f'{msg.data!r} is empty')
            return
        if self.questions.put(text) is None:
            self._warn('question_overflow', 'question dropped: '
                       f'{self.questions.size} already waiting '
                       f'(question_queue_size): {text!r}')

    def _publish_answer(self, result):
        frame, question = result.frame, result.question
        publishers = self.publishers_by_topic.get(frame.topic)
        if publishers is None or not self.context.ok():
            return
        publishers['answer'].publish(String(data=result.text))
        publishers['answer_info'].publish(String(data=json.dumps({
            'question': question.text, 'answer': result.text,
            'camera': self._camera_name(frame.topic),
            'stamp': frame.stamp, 'frame_id': frame.frame_id,
            'question_number': question.number,
            'inference_s': round(result.inference_seconds, 4),
            'latency_s': round(time.monotonic() - question.received, 4)},
            ensure_ascii=False)))

    @property
    def published(self):
        """Captions published so far."""
        return self.figures.published

    @property
    def skipped_frames(self):
        """Frames refused by conversion so far."""
        return self.figures.skipped_frames

    @property
    def last_latency(self):
        """Image stamp to caption publish of the last caption (seconds)."""
        return self.figures.latency.last

    def _caption_failed(self, batch, exc):
        self._warn(('inference', type(exc).__name__),
                   f'caption failed, batch of {len(batch)} frame(s) '
                   f'skipped: {type(exc).__name__}: {exc}')

    # -- control and diagnostics ---------------------------------------

    def _on_params(self, updates):
        """Hand the live settings to the worker whenever one changes."""
        if set(updates) & set(CaptionSettings.names()):
            self.settings = CaptionSettings.from_values(self.params)
            if self.worker is not None:
                self.worker.update(self.settings)
        if set(updates) & {'watch', 'event_holdoff_s'}:
            self.events.update(self.params['watch'],
                               self.params['event_holdoff_s'])

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enable', value=request.data)])
        response.success = self.params['enable'] == request.data
        response.message = 'captioning ' + (
            'enabled' if self.params['enable'] else 'paused')
        self.get_logger().info(response.message)
        return response

    def _diagnostics(self):
        if self.lifecycle_state != 'active':
            return OK, self.lifecycle_state + (
                ' (model loaded)' if self.backend is not None else ''), {
                'lifecycle_state': self.lifecycle_state}
        routes = [{'topic': self.choosers[t].topic, 'key': t,
                   'reliability': self.reliability_by_topic[t],
                   'offered': self.choosers[t].offered}
                  for t in self.topics]
        warning, summary, values = self.figures.report(
            self.settings, self.params['latency_warn_s'],
            self.worker.stats(), self.backend.stats(),
            self.backend.problem(), routes)
        values['lifecycle_state'] = self.lifecycle_state
        values['questions_total'] = self.questions.asked
        values['questions_dropped'] = self.questions.dropped
        values['questions_answered'] = self.worker.answers
        values['questions_waiting'] = len(self.questions)
        values['events_total'] = self.events.events
        values['events_held_off'] = self.events.held_off
        values['watch'] = ','.join(self.events.patterns)
        return (WARN, warning, values) if warning else (OK, summary, values)


    def destroy_node(self):
        """Stop the worker and free the model before the node goes."""
        self._stop_captioning()
        self._release()
        result = super().destroy_node()
        # rclpy's LifecycleNode leaves its state machine alive, and the
        # state machine keeps the node itself alive (in the ROS graph, with
        # no topics) until garbage collection: destroy it now.
        machine = getattr(self, '_state_machine', None)
        if machine is not None:
            machine.destroy_when_not_in_use()
        return result


def main(args=None):
    """Entry point of ``ros2 run camera_caption captioner_node``."""
    exit_now(run_node(CaptionerNode, args))


if __name__ == '__main__':
    main()
