"""
Synthetic scenes: one coloured shape on a plain background.

No ROS import.  :func:`render_scene` draws a frame as OpenCV delivers one
(``H x W x 3`` uint8, BGR).  The same function renders the demo model's
training data (:mod:`camera_caption.tools.demo_model`), the camera's
``test_pattern`` and the test images, so that the demo model's caption of
a test-pattern frame, :func:`caption_of` its scene, is true of the frame.
"""

import math

import cv2
import numpy as np

# BGR, as OpenCV frames are.
COLOURS = {
    'red': (0, 0, 255),
    'green': (0, 200, 0),
    'blue': (255, 0, 0),
    'yellow': (0, 255, 255),
}
SHAPES = ('circle', 'square', 'triangle')
BACKGROUNDS = {
    'white': (255, 255, 255),
    'black': (0, 0, 0),
}
# Shape extent as a share of the frame's shorter side.
CANONICAL_SIZE = 0.45
SIZE_RANGE = (0.25, 0.6)
_SHIFT = 4          # fixed-point bits: OpenCV draws at 1/16 pixel


def caption_of(colour, shape, background):
    """Return the sentence that is true of a scene."""
    return f'a {colour} {shape} on a {background} background'


def canonical_scenes():
    """
    Return every (colour, shape, background), in test-pattern order.

    Consecutive scenes always differ in colour and shape (4 and 3 are
    coprime) and mostly in background too (it alternates, and skips one
    beat after 12 scenes so that each colour and shape gets both).
    """
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    n = len(colours) * len(SHAPES) * len(backgrounds)
    pairs = len(colours) * len(SHAPES)
    return [(colours[i % len(colours)], SHAPES[i % len(SHAPES)],
             backgrounds[(i + i // pairs) % len(backgrounds)])
            for i in range(n)]


def render_scene(colour, shape, background, width, height, rng=None,
                 centre=None, size=None, noise=None):
    """
    Return a BGR uint8 ``height x width`` frame of one scene.

    Without ``rng`` the shape is centred at :data:`CANONICAL_SIZE` and the
    frame is noise-free (the canonical scene).  With ``rng`` (a numpy
    Generator) the position, size, colour and sensor noise are drawn at
    random (training data, robustness tests).  ``centre`` (x, y, in
    pixels, floats allowed), ``size`` (share of the shorter side) and
    ``noise`` (standard deviation in grey levels) override either.
    """
    if colour not in COLOURS:
        raise ValueError(f'colour {colour!r} is not one of {list(COLOURS)}')
    if shape not in SHAPES:
        raise ValueError(f'shape {shape!r} is not one of {list(SHAPES)}')
    if background not in BACKGROUNDS:
        raise ValueError(f'background {background!r} is not one of '
                         f'{list(BACKGROUNDS)}')
    short = min(width, height)
    fill = np.array(COLOURS[colour], np.float64)
    back = np.array(BACKGROUNDS[background], np.float64)
    if rng is not None:
        size = size if size is not None else rng.uniform(*SIZE_RANGE)
        if centre is None:
            half = size * short / 2
            centre = (rng.uniform(half, width - half),
                      rng.uniform(half, height - half))
        fill = np.clip(fill + rng.uniform(-25, 25, 3), 0, 255)
        back = np.clip(back + rng.uniform(-25, 25, 3), 0, 255)
        noise = noise if noise is not None else rng.uniform(0, 6)
    size = CANONICAL_SIZE if size is None else size
    if centre is None:
        centre = (width / 2, height / 2)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = np.round(back).astype(np.uint8)
    _draw(frame, shape, centre, size * short / 2,
          tuple(int(round(v)) for v in fill))
    if noise:
        if rng is None:
            rng = np.random.default_rng(0)
        noisy = frame + rng.normal(0, noise, frame.shape)
        frame = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return frame


def _draw(frame, shape, centre, half, colour):
    """Draw a filled, anti-aliased shape of half-extent ``half`` pixels."""
    scale = 1 << _SHIFT
    cx, cy = centre
    if shape == 'circle':
        cv2.circle(frame, (round(cx * scale), round(cy * scale)),
                   max(1, round(half * scale)), colour, -1, cv2.LINE_AA,
                   _SHIFT)
        return
    if shape == 'square':
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        points = [(cx + dx * half, cy + dy * half) for dx, dy in corners]
    else:   # equilateral triangle, pointing up, centred on its centroid
        points = [(cx + half * math.cos(a), cy - half * math.sin(a))
                  for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
        # Its height is 1.5 * half: move it down so it fills the box.
        points = [(x, y + half / 4) for x, y in points]
    pts = np.array([[round(x * scale), round(y * scale)] for x, y in points],
                   np.int32)
    cv2.fillPoly(frame, [pts], colour, cv2.LINE_AA, _SHIFT)
