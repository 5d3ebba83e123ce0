"""
The captioner's image subscriptions, one per camera, following the QoS offered.

rclpy side.  Each camera's topic gets a depth-1 subscription of
``sensor_msgs/Image`` (or ``CompressedImage`` on ``<topic>/compressed``)
whose callback converts the message to RGB and hands it on, or hands on the
conversion error.  With ``reliability: auto`` it is reliable when every
publisher on the topic offers reliable, best effort otherwise (see
:mod:`camera_caption.pipeline.qos_choice`): :meth:`ImageSubscriptions.follow`
reads the graph (once a second, from a timer) and recreates a
subscription, with one log line, when the choice changes.
"""

from camera_caption.frames.image_conversion import (compressed_to_rgb,
                                                    ImageConversionError)
from camera_caption.nodes.message_conversion import image_msg_to_rgb
from camera_caption.nodes.ros_qos import image_qos, offered_reliability
from camera_caption.pipeline.qos_choice import BEST_EFFORT, ReliabilityChooser
try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from sensor_msgs.msg import CompressedImage, Image


class ImageSubscriptions:
    """Depth-1 image subscriptions of ``node``, one per camera topic."""

    def __init__(self, node, topics, reliability, transport, on_frame,
                 on_error):
        """
        Subscribe to ``topics``; frames go to ``on_frame(topic, rgb, header)``.

        ``reliability``: ``auto``, ``reliable`` or ``best_effort``;
        ``transport``: ``raw`` or ``compressed``; ``on_error(error)`` gets
        an :class:`ImageConversionError` for a frame that was refused.
        """
        self.node = node
        self.mode = reliability
        self.transport = transport
        self.on_frame, self.on_error = on_frame, on_error
        self.subscriptions = {}
        self.names = {}             # topic -> its full name, as subscribed
        self.reliability = {}       # topic -> as subscribed now
        self.choosers = {}
        for topic in topics:
            # auto starts best effort, which matches any publisher, until
            # the graph says more (right below, then once a second).
            self._subscribe(topic, BEST_EFFORT if reliability == 'auto'
                            else reliability)
            self.choosers[topic] = ReliabilityChooser(
                self.subscriptions[topic].topic_name, reliability)
        self.follow()

    def name(self, topic):
        """Return a camera's full topic name, as subscribed."""
        return self.names.get(topic, topic)   # any thread: no rclpy call

    def routes(self):
        """One dict per camera for the diagnostics: name, QoS, offers."""
        return [{'topic': chooser.topic, 'key': topic,
                 'reliability': self.reliability[topic],
                 'offered': chooser.offered}
                for topic, chooser in self.choosers.items()]

    def follow(self):
        """Read what the publishers offer; resubscribe when auto says so."""
        for topic, chooser in self.choosers.items():
            offered = [offered_reliability(info.qos_profile) for info in
                       self.node.get_publishers_info_by_topic(chooser.topic)]
            change = chooser.update(offered)
            if change is None:
                continue
            choice, line = change
            if choice != self.reliability[topic]:
                self._subscribe(topic, choice)
            self.node.get_logger().info(line)

    def destroy(self):
        """Unsubscribe from every camera."""
        for subscription in self.subscriptions.values():
            self.node.destroy_subscription(subscription)
        self.subscriptions.clear()
        self.choosers.clear()

    def _subscribe(self, topic, reliability):
        """(Re)create the image subscription of ``topic``."""
        old = self.subscriptions.get(topic)
        events = None
        if self.mode == 'auto':
            # A best-effort publisher meeting our reliable subscription:
            # the next graph read (within a second) switches to best_effort
            # and says so, instead of rclpy's 'incompatible QoS' warning.
            events = SubscriptionEventCallbacks(
                incompatible_qos=lambda event: None)
        if self.transport == 'compressed':
            kind, name = CompressedImage, topic + '/compressed'
            convert = _compressed_to_rgb
        else:
            kind, name, convert = Image, topic, image_msg_to_rgb
        self.subscriptions[topic] = self.node.create_subscription(
            kind, name, lambda msg: self._on_msg(msg, topic, convert),
            image_qos(reliability), event_callbacks=events)
        self.names[topic] = self.subscriptions[topic].topic_name
        self.reliability[topic] = reliability
        if old is not None:
            self.node.destroy_subscription(old)

    def _on_msg(self, msg, topic, convert):
        try:
            image = convert(msg)
        except ImageConversionError as exc:
            self.on_error(exc)
            return
        self.on_frame(topic, image, msg.header)


def _compressed_to_rgb(msg):
    return compressed_to_rgb(msg.format, msg.data)
