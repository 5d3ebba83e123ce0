"""Declare and validate node parameters from their specs (rclpy side)."""

from camera_caption.contract.parameters import find, ParameterError
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult


def declare_parameters(node, specs):
    """
    Declare ``specs`` on ``node``; return ``{name: validated value}``.

    Raises :class:`ParameterError` naming the first bad parameter.
    """
    values = {}
    for spec in specs:
        descriptor = ParameterDescriptor(
            description=spec.description, dynamic_typing=True,
            read_only=not spec.live)
        param = node.declare_parameter(spec.name, spec.default, descriptor)
        values[spec.name] = spec.coerce(param.value)
    return values


def watch_parameters(node, specs, values, on_change=None):
    """
    Validate ``ros2 param set`` on live parameters and update ``values``.

    A bad value is refused with the reason; a good one is stored coerced in
    ``values`` (which the worker reads) and passed to ``on_change``.
    """
    def callback(params):
        updates = {}
        for param in params:
            spec = find(specs, param.name)
            if spec is None:
                continue
            try:
                updates[spec.name] = spec.coerce(param.value)
            except ParameterError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        values.update(updates)
        if on_change and updates:
            on_change(updates)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(callback)
