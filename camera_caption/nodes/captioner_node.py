"""
captioner node: newest image in, caption out on ``caption``.

A lifecycle node, as heavy ROS 2 nodes are: *configure* opens the
captioning backend (loads the model) and creates the publishers,
*activate* subscribes to the images and starts captioning, *deactivate*
stops captioning but keeps the model loaded, *cleanup* frees it (GPU
memory included).  :func:`main` drives it: with ``autostart`` (the default)
it configures and activates the node at start, so ``ros2 run`` and ``ros2
launch`` caption at once and ``ros2 lifecycle get /captioner`` says
``active``.

The node does the ROS work only: parameters and lifecycle, the image
subscriptions and their QoS (:mod:`~camera_caption.nodes.
image_subscriptions`), and turning the typed results of the ROS-free
:class:`~camera_caption.service.caption_service.CaptionService` (which
owns the model, the worker thread, questions, events, figures and the
overlay) into messages on lifecycle publishers.
"""

from camera_caption.contract.parameters import (caption_topics,
                                                CAPTIONER_PARAMETERS,
                                                image_topic_list)
from camera_caption.nodes.image_subscriptions import ImageSubscriptions
from camera_caption.nodes.node_runner import exit_now, run_node, START_ERRORS
from camera_caption.nodes.ros_diagnostics import DiagnosticsPublisher, OK, WARN
from camera_caption.nodes.ros_parameters import (declare_parameters,
                                                 watch_parameters)
from camera_caption.service.caption_service import CaptionService
from camera_caption.utilities.jpeg import encode_jpeg
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
# Each camera's outputs: (name, type, suffix of its caption topic, depth);
# depth 1 for pictures: a viewer wants the newest, not a backlog.
OUTPUTS = (('caption', String, '', 10), ('info', String, '_info', 10),
           ('event', String, '_event', 10), ('image', Image, '_image', 1),
           ('image_compressed', CompressedImage, '_image/compressed', 1),
           ('answer', String, '<answer>', 10),
           ('answer_info', String, '<answer>_info', 10))


class CaptionerNode(LifecycleNode):
    """Caption the newest frame of ``image_raw`` on ``caption``."""

    node_name = 'captioner'   # also what start-up errors are logged as

    def __init__(self, backend=None, **kwargs):
        """
        Declare the parameters; the node starts unconfigured.

        ``backend`` (a :class:`~camera_caption.engine.backend.
        CaptionBackend`) is used instead of opening the one the parameters
        name, and is not closed by cleanup: the caller owns it.
        """
        # Set first: destroy_node() also runs when __init__ failed.
        self.service = self.images = self.graph_timer = None
        self.question_subscription = self.configure_error = None
        self.outputs = {}           # topic -> {output name: publisher}
        super().__init__('captioner', **kwargs)
        self.params = declare_parameters(self, CAPTIONER_PARAMETERS)
        self.topics = caption_topics(image_topic_list(
            self.params['image_topics']))
        self.service = CaptionService(
            self.params, self.topics, self.get_logger(), backend,
            clock=lambda: self.get_clock().now().nanoseconds * 1e-9)
        watch_parameters(self, CAPTIONER_PARAMETERS, self.params,
                         self.service.update)
        self.enable_service = self.create_service(SetBool, '~/enable',
                                                  self._on_enable)
        self.diagnostics = DiagnosticsPublisher(self, self.params['model'],
                                                self._diagnostics)

    def autostart(self):
        """
        With ``autostart``: configure (load the model), then activate.

        When the model does not load, the node is destroyed and the
        configure error (one line) raised.  Returns the node.
        """
        if not self.params['autostart']:
            self.get_logger().info(
                'unconfigured (autostart is false): ros2 lifecycle set '
                f'{self.get_fully_qualified_name()} configure, then activate')
            return self
        self.trigger_configure()
        if self.configure_error is not None:
            self.destroy_node()     # out of the ROS graph, then the line
            raise self.configure_error
        self.trigger_activate()
        return self

    @property
    def lifecycle_state(self):
        """Return rclpy's lifecycle state label (``active``, ...)."""
        return self._state_machine.current_state[1]

    @property
    def backend(self):
        """Return the backend in use (None while unconfigured)."""
        return self.service.backend if self.service else None

    @property
    def worker(self):
        """Return the caption worker; None before the first activation."""
        return self.service.worker if self.service else None

    # -- lifecycle -----------------------------------------------------

    def on_configure(self, state):
        """Open the backend (load the model) and create the publishers."""
        log = self.get_logger()
        self.configure_error = None
        try:
            described = self.service.load()
        except Exception as exc:  # noqa: B902 - reported, then unconfigured
            self.configure_error = exc
            if not self.params['autostart']:
                log.error(str(exc) if isinstance(exc, START_ERRORS) else
                          f'configure failed: {type(exc).__name__}: {exc}')
            return FAILURE
        for topic, caption_topic in self.topics.items():
            answer_topic = caption_topic[:-len('caption')] + 'answer'
            self.outputs[topic] = {
                name: self.create_lifecycle_publisher(
                    kind, suffix.replace('<answer>', answer_topic)
                    if suffix.startswith('<') else caption_topic + suffix,
                    depth)
                for name, kind, suffix, depth in OUTPUTS}
        log.info(f'model ready: {described}')
        return SUCCESS

    def on_activate(self, state):
        """Subscribe to the images and start captioning."""
        result = super().on_activate(state)     # the publishers first
        p = self.params
        self.images = ImageSubscriptions(
            self, self.topics, p['reliability'], p['image_transport'],
            self._on_frame, self.service.skip)
        self.graph_timer = self.create_timer(1.0, self.images.follow)
        self.service.start(self._publish, self._publish_answer,
                           self.images.name)
        self.question_subscription = self.create_subscription(
            String, 'question', lambda msg: self.service.ask(msg.data), 10)
        routes = ', '.join(
            f'{self.images.name(t)} -> '
            f'{self.outputs[t]["caption"].topic_name}' for t in self.topics)
        self.get_logger().info(
            f'captioning {routes} at <= {self.service.settings.rate_hz:g} Hz')
        return result

    def on_deactivate(self, state):
        """Stop captioning; the model stays loaded."""
        self._stop_captioning()
        self.get_logger().info('inactive: captioning stopped, model loaded')
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        """Free the model (and its GPU memory) and the publishers."""
        self._release()
        self.get_logger().info('unconfigured: model unloaded')
        return SUCCESS

    def on_shutdown(self, state):
        """Stop and free everything."""
        self._stop_captioning()
        self._release()
        return SUCCESS

    def _stop_captioning(self):
        if self.service is not None:
            self.service.stop()
        if self.graph_timer is not None:
            self.destroy_timer(self.graph_timer)
            self.graph_timer = None
        if self.question_subscription is not None:
            self.destroy_subscription(self.question_subscription)
            self.question_subscription = None
        if self.images is not None:
            self.images.destroy()
            self.images = None

    def _release(self):
        for publishers in self.outputs.values():
            for publisher in publishers.values():
                self.destroy_lifecycle_publisher(publisher)
        self.outputs.clear()
        if self.service is not None:
            self.service.close()

    # -- messages in and out ---------------------------------------------

    def _on_frame(self, topic, image, header):
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        self.service.submit(topic, image, stamp, header.frame_id, header)

    def _publish(self, out):
        publishers = self.outputs.get(out.topic)
        if publishers is None or not self.context.ok():
            return
        publishers['caption'].publish(String(data=out.text))
        publishers['info'].publish(String(data=out.info_json()))
        for event in out.event_jsons():
            publishers['event'].publish(String(data=event))
        self._publish_overlay(publishers, out)

    def _publish_overlay(self, publishers, out):
        """caption_image(/compressed), drawn only while someone listens."""
        raw = publishers['image'].get_subscription_count() > 0
        jpeg = publishers['image_compressed'].get_subscription_count() > 0
        header = out.frame.header
        if not (raw or jpeg) or header is None:
            return
        drawn = self.service.draw(out)
        if raw:
            height, width = drawn.shape[:2]
            publishers['image'].publish(Image(
                header=header, height=height, width=width, encoding='rgb8',
                step=width * 3, data=drawn.tobytes()))
        data = encode_jpeg(drawn, 80) if jpeg else None
        if data is not None:
            publishers['image_compressed'].publish(CompressedImage(
                header=header, format='rgb8; jpeg compressed bgr8',
                data=data))

    def _publish_answer(self, out):
        publishers = self.outputs.get(out.topic)
        if publishers is None or not self.context.ok():
            return
        publishers['answer'].publish(String(data=out.text))
        publishers['answer_info'].publish(String(data=out.info_json()))

    @property
    def published(self):
        """Captions published so far."""
        return self.service.figures.published

    @property
    def skipped_frames(self):
        """Frames refused by conversion so far."""
        return self.service.figures.skipped_frames

    @property
    def last_latency(self):
        """Image stamp to caption publish of the last caption (seconds)."""
        return self.service.figures.latency.last

    # -- control and diagnostics ---------------------------------------

    def _on_enable(self, request, response):
        self.set_parameters([Parameter('enable', value=request.data)])
        response.success = self.params['enable'] == request.data
        response.message = 'captioning ' + (
            'enabled' if self.params['enable'] else 'paused')
        self.get_logger().info(response.message)
        return response

    def _diagnostics(self):
        state = self.lifecycle_state
        if state != 'active' or not self.service.running:
            return OK, state + (' (model loaded)' if self.backend is not None
                                else ''), {'lifecycle_state': state}
        warning, summary, values = self.service.report(self.images.routes())
        values['lifecycle_state'] = state
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


def make_captioner(**kwargs):
    """Make a captioner and drive it through autostart (as main() does)."""
    return CaptionerNode(**kwargs).autostart()


make_captioner.node_name = CaptionerNode.node_name  # for start-up errors


def main(args=None):
    """Entry point of ``ros2 run camera_caption captioner_node``."""
    exit_now(run_node(make_captioner, args))


if __name__ == '__main__':
    main()
