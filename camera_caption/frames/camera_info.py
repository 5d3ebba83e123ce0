"""
The camera's calibration, as ``sensor_msgs/CameraInfo`` fields.

No ROS import.  :func:`load_calibration` reads the YAML that
``camera_calibration`` writes and ``camera_info_manager`` reads (the
``camera_info_url`` parameter: ``file:///path.yaml``, a plain path or
``package://pkg/path.yaml``); :func:`uncalibrated` is what a driver
publishes without one: the frame size and all-zero matrices, which
image_pipeline tools read as "not calibrated".
"""

from dataclasses import dataclass, field
import os

from camera_caption.contract.parameters import ParameterError


@dataclass
class Calibration:
    """The ``sensor_msgs/CameraInfo`` fields of one camera."""

    width: int
    height: int
    distortion_model: str = ''
    d: list = field(default_factory=list)
    k: list = field(default_factory=lambda: [0.0] * 9)
    r: list = field(default_factory=lambda: [0.0] * 9)
    p: list = field(default_factory=lambda: [0.0] * 12)

    @property
    def calibrated(self):
        """Whether the intrinsics are known (K[0] is the focal length)."""
        return self.k[0] != 0.0


def uncalibrated(width, height):
    """Return the camera info of a camera without calibration."""
    return Calibration(int(width), int(height))


def calibration_path(url):
    """Turn a ``camera_info_url`` into a file path (raise if it cannot)."""
    if url.startswith('file://'):
        return url[len('file://'):]
    if url.startswith('package://'):
        package, _, rest = url[len('package://'):].partition('/')
        try:
            from ament_index_python.packages import \
                get_package_share_directory
            return os.path.join(get_package_share_directory(package), rest)
        except (ImportError, LookupError) as exc:
            raise ParameterError(
                f"parameter 'camera_info_url' = {url!r} is invalid: package "
                f"'{package}' not found ({exc})") from exc
    if '://' in url:
        raise ParameterError(
            f"parameter 'camera_info_url' = {url!r} is invalid: use "
            'file:///path.yaml, package://pkg/path.yaml or a plain path')
    return os.path.expanduser(url)


def _matrix(data, key, size, url):
    entry = data.get(key)
    values = entry.get('data') if isinstance(entry, dict) else entry
    if values is None:
        return None
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        values = []
    if size and len(values) != size:
        raise ParameterError(
            f"camera_info_url '{url}': '{key}' must hold {size} numbers, "
            f'got {entry!r}')
    return values


def load_calibration(url):
    """
    Read a camera calibration YAML; raise :class:`ParameterError`.

    Accepts the ``camera_calibration`` format (``image_width``,
    ``image_height``, ``camera_matrix``, ``distortion_model``,
    ``distortion_coefficients``, ``rectification_matrix``,
    ``projection_matrix``; each matrix ``{rows, cols, data}``).
    """
    import yaml
    path = calibration_path(url)
    try:
        with open(path, encoding='utf-8') as stream:
            data = yaml.safe_load(stream)
    except OSError as exc:
        raise ParameterError(
            f"parameter 'camera_info_url' = {url!r} is invalid: "
            f'{exc.strerror}') from exc
    except yaml.YAMLError as exc:
        raise ParameterError(
            f"camera_info_url '{url}' is not YAML: "
            f'{str(exc).splitlines()[0]}') from exc
    if not isinstance(data, dict) or 'camera_matrix' not in data:
        raise ParameterError(
            f"camera_info_url '{url}' is not a camera calibration (no "
            "'camera_matrix'; camera_calibration writes one)")
    try:
        width, height = int(data['image_width']), int(data['image_height'])
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(
            f"camera_info_url '{url}': 'image_width' and 'image_height' "
            'must be integers') from exc
    calibration = Calibration(width, height,
                              str(data.get('distortion_model') or ''))
    calibration.k = _matrix(data, 'camera_matrix', 9, url)
    calibration.d = _matrix(data, 'distortion_coefficients', 0, url) or []
    calibration.r = _matrix(data, 'rectification_matrix', 9, url) or [
        1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    calibration.p = _matrix(data, 'projection_matrix', 12, url) or (
        calibration.k[:3] + [0.0] + calibration.k[3:6] + [0.0]
        + calibration.k[6:] + [0.0])
    return calibration
