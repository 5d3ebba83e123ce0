"""The image QoS of this package (rclpy side): depth 1, keep last."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile,
                       ReliabilityPolicy)


def image_qos(reliability):
    """Depth-1, keep-last QoS with the given reliability for images."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=1,
        reliability=(ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                     else ReliabilityPolicy.BEST_EFFORT),
        durability=DurabilityPolicy.VOLATILE)


def offered_reliability(qos_profile):
    """``reliable`` or ``best_effort``: what a publisher's QoS offers."""
    return ('reliable' if qos_profile.reliability == ReliabilityPolicy.RELIABLE
            else 'best_effort')
