"""
The pose of an image's frame in a fixed frame, from tf, for the memory.

Where ``tf2_ros`` is importable (a ROS install) a tf listener follows
``/tf`` and ``/tf_static``; the PyPI wheels have no ``tf2_ros``, and then
:func:`pose_lookup` says so once and returns None.
"""


def pose_lookup(node, fixed_frame):
    """Return ``(frame_id, stamp) -> pose dict or None``, or None."""
    if not fixed_frame:
        return None
    try:
        from rclpy.time import Time
        import tf2_ros
    except ImportError:
        node.get_logger().warning(
            f"memory_fixed_frame '{fixed_frame}' needs tf2_ros (apt install "
            'ros-$ROS_DISTRO-tf2-ros); captions are stored without pose')
        return None
    from rclpy.duration import Duration
    # Two minutes of history: a clip or a slow model captions late.
    buffer = tf2_ros.Buffer(cache_time=Duration(seconds=120))
    node.tf_listener = tf2_ros.TransformListener(buffer, node)

    def pose(frame_id, stamp):
        try:
            t = buffer.lookup_transform(
                fixed_frame, frame_id, Time(nanoseconds=int(stamp * 1e9)))
        except tf2_ros.TransformException:
            return None
        tr, q = t.transform.translation, t.transform.rotation
        return {'frame': fixed_frame, 'x': tr.x, 'y': tr.y, 'z': tr.z,
                'qx': q.x, 'qy': q.y, 'qz': q.z, 'qw': q.w}
    return pose
