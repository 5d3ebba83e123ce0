"""
The captioner's live settings, typed and validated in one place.

No ROS import.  :class:`CaptionSettings` holds what may change while the
captioner runs (``ros2 param set``); it is built from parameter values with
:meth:`CaptionSettings.from_values`, which validates each one against its
spec, and handed whole to the worker whenever one of them changes, so the
worker never reads a half-updated set nor restates a default.
"""

from dataclasses import dataclass, fields

from camera_caption.contract.parameters import CAPTIONER_PARAMETERS, find


def _default(name):
    return find(CAPTIONER_PARAMETERS, name).default


@dataclass(frozen=True)
class CaptionSettings:
    """What the worker reads before every batch (defaults: the specs')."""

    prompt: str = _default('prompt')
    max_new_tokens: int = _default('max_new_tokens')
    rate_hz: float = _default('rate_hz')
    enable: bool = _default('enable')
    scene_change_threshold: float = _default('scene_change_threshold')
    dedupe: bool = _default('dedupe')
    dedupe_similarity: float = _default('dedupe_similarity')
    clip_frames: int = _default('clip_frames')
    clip_seconds: float = _default('clip_seconds')
    system_prompt: str = _default('system_prompt')

    @classmethod
    def from_values(cls, values):
        """
        Build from ``{parameter: value}``; missing ones take the default.

        Raises :class:`~camera_caption.contract.parameters.ParameterError` naming
        the first bad value.
        """
        kwargs = {}
        for item in fields(cls):
            if item.name in values:
                spec = find(CAPTIONER_PARAMETERS, item.name)
                kwargs[item.name] = spec.coerce(values[item.name])
        return cls(**kwargs)

    @classmethod
    def names(cls):
        """Return the parameter names that are live settings."""
        return tuple(item.name for item in fields(cls))
