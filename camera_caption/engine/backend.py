"""
The captioning backend seam: all that the worker and the captioner know.

No ROS import.  A backend captions a batch (one entry per camera) with a
prompt, a token limit and a system prompt.  An entry is a frame (an ``H x W x 3`` uint8 RGB
array) or, in clip mode (``clip_frames`` > 1), a clip: a list of N items,
oldest first, each a frame or what :meth:`CaptionBackend.prepare` made of
one (all clips of a batch are N long).  A backend that cannot take clips
captions a clip's last (newest) item.  It describes itself in one line,
reports its figures for ``/diagnostics`` and frees what it holds.  The
captioner's ``backend`` parameter picks one from :data:`BACKENDS`; adding a
backend is a module with a :class:`CaptionBackend` subclass plus one line
there (and its parameters in :mod:`camera_caption.contract.parameters`).
"""

import abc
import importlib

from camera_caption.contract.constants import BACKENDS

__all__ = ['BACKENDS', 'CaptionBackend', 'open_backend']


class CaptionBackend(abc.ABC):
    """Turn frames into captions."""

    @classmethod
    @abc.abstractmethod
    def create(cls, params, max_batch, log):
        """
        Make the backend ready (load a model, reach a server).

        ``params`` holds the captioner's validated parameter values,
        ``max_batch`` the most frames one call will get (the cameras), and
        ``log`` is an object with ``info`` and ``warning``.  Raises
        :class:`~camera_caption.contract.errors.ModelLoadError`
        with one line of advice when it cannot.
        """

    @abc.abstractmethod
    def caption(self, frames, prompt, max_new_tokens, system_prompt=''):
        """
        Return one caption per frame (the prompt not repeated).

        ``system_prompt`` comes before the image(s) and ``prompt`` where
        the model has a system message (chat models, serving engines).

        ``None`` in place of a caption: that frame was not captioned and
        the backend has said why itself (a remote server that is down).
        """

    def prepare(self, frame):
        """
        Return what a clip ring stores for ``frame`` (default: the frame).

        Called on arrival of every frame in clip mode, on the executor
        thread, so it must be cheap: the local backend resizes and
        normalises to the model's input size here.
        """
        return frame

    @abc.abstractmethod
    def describe(self):
        """Say in one line what captions (for the log)."""

    def path(self, clip):
        """
        Say how a still (or a clip, ``clip`` True) is captioned.

        Returns ``{'model', 'family', 'model_type', 'input', 'engine'}``
        for ``caption_info``; ``input`` is ``still``, ``images`` (a clip as
        N images) or ``video`` (a clip as one video).
        """
        return {'model': '', 'family': '', 'model_type': '',
                'input': 'images' if clip else 'still', 'engine': ''}

    def stats(self):
        """Return ``{name: value}`` figures for ``/diagnostics``."""
        return {}

    def problem(self):
        """Return why the backend is degraded ('' when it is not)."""
        return ''

    def cancel(self):
        """
        Make a :meth:`caption` under way return at once (frames as None).

        Called from another thread when captioning stops; the backend stays
        usable.  A local model cannot be interrupted: it finishes its batch.
        """

    def close(self):
        """Free what the backend holds (GPU memory, connections)."""


def backend_class(name):
    """Return the :class:`CaptionBackend` class registered as ``name``."""
    try:
        module_name, _, class_name = BACKENDS[name].partition(':')
    except KeyError:
        raise ValueError(f"backend '{name}' is not one of "
                         + ', '.join(sorted(BACKENDS))) from None
    return getattr(importlib.import_module(module_name), class_name)


def open_backend(params, max_batch, log):
    """Open the backend that ``params['backend']`` names."""
    return backend_class(params.get('backend', 'local')).create(
        params, max_batch, log)
