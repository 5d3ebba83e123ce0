"""
The demo model's recipe and its data: settings, scenes, the frames it must know.

The settings (:data:`RECIPE`), the random training scenes, and the scenes
that must be right (every canonical scene at every camera size of
:data:`CHECK_SIZES`, every test-pattern frame), as
:mod:`camera_caption.tools.demo_training` uses them.  Their code is part of
its ``recipe_hash()``.
"""

from camera_caption.frames import scenes

# The training recipe.  recipe_hash() covers it, the scene renderer and
# the training code, so any change trains a new cached model.
RECIPE = {
    'version': 2,
    'seed': 0,
    'threads': 1,
    'image_size': 32,
    'patch_size': 4,
    'hidden_size': 64,
    'intermediate_size': 128,
    'num_layers': 2,
    'num_heads': 4,
    'num_query_tokens': 4,
    'train_images': 12000,
    'render_width': (64, 256),
    'aspects': (4 / 3, 16 / 9, 1.0, 3 / 2, 3 / 4),
    'pixel_noise': 0.06,
    'edge_filters': 4.0,
    'edge_share': 1.0,
    'aux_weights': (0.5, 1.0, 0.5),
    'batch': 32,
    'lr': 2e-3,
    'round_lr': 0.8,
    'vision_steps': 600,
    'language_steps': 400,
    'max_rounds': 12,
    'must_repeat': 4,
    'average_decay': 0.995,
    'check_images': 240,
    'check_tolerance': 0.05,
}
# Camera sizes (width, height) the canonical scenes are checked at.
CHECK_SIZES = ((640, 480), (320, 240), (160, 120), (1280, 720), (480, 640))
MARKER = 'demo_model.json'


def _labels_of(captions):
    """(N, 3) colour, shape and background indices of scene captions."""
    import torch
    colours, backgrounds = list(scenes.COLOURS), list(scenes.BACKGROUNDS)
    rows = []
    for caption in captions:
        words = caption.split()      # a COLOUR SHAPE on a BACKGROUND ...
        rows.append((colours.index(words[1]), scenes.SHAPES.index(words[2]),
                     backgrounds.index(words[5])))
    return torch.tensor(rows)


def _corpus():
    return [scenes.caption_of(c, s, b) for c in scenes.COLOURS
            for s in scenes.SHAPES for b in scenes.BACKGROUNDS]


def _resize(frame_bgr, size):
    """BGR frame -> (3, size, size) uint8 RGB, as the fast path resizes."""
    import torch
    import torch.nn.functional as F
    tensor = torch.from_numpy(frame_bgr[..., ::-1].copy()).permute(2, 0, 1)
    tensor = F.interpolate(tensor[None].float(), size=(size, size),
                           mode='bicubic', antialias=True,
                           align_corners=False)[0]
    return tensor.round_().clamp_(0, 255).to(torch.uint8)


def _scene_set(rng, count, size):
    """Random scenes: uint8 images (N, 3, S, S), captions, labels (N, 3)."""
    import torch
    colours, backgrounds = list(scenes.COLOURS), list(scenes.BACKGROUNDS)
    lo, hi = RECIPE['render_width']
    images, captions, labels = [], [], []
    for i in range(count):
        # Every scene equally often; position, size and frame shape random.
        colour = colours[i % len(colours)]
        shape = scenes.SHAPES[(i // len(colours)) % len(scenes.SHAPES)]
        background = backgrounds[rng.integers(len(backgrounds))]
        width = int(rng.integers(lo, hi + 1))
        aspect = RECIPE['aspects'][rng.integers(len(RECIPE['aspects']))]
        height = max(16, int(round(width / aspect)))
        frame = scenes.render_scene(colour, shape, background, width, height,
                                    rng=rng, noise=0)
        images.append(_resize(frame, size))
        captions.append(scenes.caption_of(colour, shape, background))
        labels.append((colours.index(colour), scenes.SHAPES.index(shape),
                       backgrounds.index(background)))
    return torch.stack(images), captions, torch.tensor(labels)


def _canonical_set(size):
    """Scenes that must be right: canonical ones, test-pattern frames."""
    import torch
    from camera_caption.frames.frame_sources import TestPatternSource
    images, captions = [], []
    for width, height in CHECK_SIZES:
        for scene in scenes.canonical_scenes():
            frame = scenes.render_scene(*scene, width, height)
            images.append(_resize(frame, size))
            captions.append(scenes.caption_of(*scene))
    # Six frames of every scene along the test pattern's motion.
    pattern = TestPatternSource(640, 480, fps=2.0)
    for index in range(len(pattern.scenes) * pattern.frames_per_scene):
        images.append(_resize(pattern.read(), size))
        captions.append(pattern.caption(index))
    return torch.stack(images), captions
