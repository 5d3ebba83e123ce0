"""Publish diagnostic_msgs/DiagnosticArray on /diagnostics (rclpy side)."""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN


def _text(value):
    if isinstance(value, float):
        return f'{value:.4g}'
    return '' if value is None else str(value)


class DiagnosticsPublisher:
    """One status per node, published once per ``period`` seconds."""

    def __init__(self, node, hardware_id, collect, period=1.0):
        self._node = node
        self._hardware_id = hardware_id
        self._collect = collect    # () -> (level, message, {key: value})
        self.publisher = node.create_publisher(DiagnosticArray,
                                               '/diagnostics', 10)
        self.timer = node.create_timer(period, self.publish)
        self.last = None

    def publish(self):
        """Collect the figures and publish them."""
        level, message, values = self._collect()
        status = DiagnosticStatus(
            level=level, name=f'{self._node.get_fully_qualified_name()}',
            message=message, hardware_id=self._hardware_id,
            values=[KeyValue(key=k, value=_text(v))
                    for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self.publisher.publish(array)
        self.last = status
