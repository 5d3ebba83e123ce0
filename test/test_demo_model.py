"""The demo model says what the frame shows, loaded like any checkpoint."""

from camera_caption.engine.fast_blip2_captioner import FastBlip2Captioner
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.frames.frame_sources import (open_source,
                                                 TestPatternSource)
from camera_caption.frames.scenes import (BACKGROUNDS, canonical_scenes,
                                          caption_of, COLOURS, render_scene,
                                          SHAPES)
from camera_caption.tools.demo_model import (CHECK_SIZES, facts_of,
                                             is_complete, MARKER,
                                             SHIPPED_DIR)
from camera_caption.tools.demo_training import recipe_hash
import numpy as np
import pytest
from subprocess_helpers import cpu_paths, run_python

pytestmark = pytest.mark.slow    # loads the demo model, in processes too

# Smallest teacher-forced logit margin the shipped model must keep: float32
# rounding differs between CPU kernels by ~1e-4 of a logit, thousands of
# times less.
MARGIN = 0.5


def rgb(frame):
    return np.ascontiguousarray(frame[..., ::-1])


def test_render_scene_is_a_bgr_frame_of_the_scene():
    frame = render_scene('red', 'square', 'white', 640, 480)
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    assert tuple(frame[240, 320]) == (0, 0, 255)          # BGR red
    assert tuple(frame[5, 5]) == (255, 255, 255)
    blue = render_scene('blue', 'circle', 'black', 320, 240)
    assert tuple(blue[120, 160]) == (255, 0, 0) and tuple(blue[2, 2]) == (
        0, 0, 0)
    # The shapes differ where a square has corners and a circle has not.
    square = render_scene('red', 'square', 'black', 400, 400)
    circle = render_scene('red', 'circle', 'black', 400, 400)
    triangle = render_scene('red', 'triangle', 'black', 400, 400)
    corner = (200 - 85, 200 - 85)
    assert square[corner].any() and not circle[corner].any()
    assert not triangle[corner].any()
    assert triangle[200 - 60, 200].any() and not triangle[200 + 60,
                                                          200 - 80].any()
    # Random scenes move, resize and add noise, reproducibly.
    a = render_scene('green', 'circle', 'white', 160, 120,
                     rng=np.random.default_rng(1))
    b = render_scene('green', 'circle', 'white', 160, 120,
                     rng=np.random.default_rng(1))
    c = render_scene('green', 'circle', 'white', 160, 120,
                     rng=np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match='purple'):
        render_scene('purple', 'circle', 'white', 10, 10)


def test_canonical_scenes_cover_every_combination_and_always_change():
    scenes = canonical_scenes()
    assert sorted(scenes) == sorted(
        (c, s, b) for c in COLOURS for s in SHAPES for b in BACKGROUNDS)
    for one, two in zip(scenes, scenes[1:] + scenes[:1]):
        assert one[0] != two[0] and one[1] != two[1], (one, two)
    flips = sum(one[2] != two[2] for one, two in zip(scenes, scenes[1:]))
    assert flips == len(scenes) - 2


def test_test_pattern_cycles_scenes_by_frame_count_and_moves():
    source = open_source('test_pattern', 160, 120, 10.0)
    assert isinstance(source, TestPatternSource)
    assert source.frames_per_scene == 30            # 3 s at 10 fps
    frames = [source.read() for _ in range(24 * 30 + 1)]
    for i in range(len(frames) - 1):
        assert not np.array_equal(frames[i], frames[i + 1]), i
    for index in (0, 29, 30, 59, 60, 24 * 30 - 1, 24 * 30):
        colour, shape, background = scenes_at = source.scene(index)
        assert scenes_at == canonical_scenes()[(index // 30) % 24]
        frame = frames[index]
        assert tuple(frame[0, 0]) == BACKGROUNDS[background]
        # The shape's colour is in the frame.
        assert (frame == COLOURS[colour]).all(axis=-1).sum() > 100
    assert source.caption(30) == caption_of(*canonical_scenes()[1])
    # Deterministic: a second source shows the very same frames.
    again = TestPatternSource(160, 120, 10.0)
    assert all(np.array_equal(again.read(), f) for f in frames[:40])


@pytest.fixture(scope='module')
def engines(demo_model_dir):
    generate = load_caption_model(demo_model_dir, device='cpu',
                                  dtype='float32', max_new_tokens=12)
    fast = FastBlip2Captioner.upgrade(load_caption_model(
        demo_model_dir, device='cpu', dtype='float32', max_new_tokens=12),
        max_batch=8)
    return {'generate': generate, 'fast': fast}


def test_the_package_ships_a_complete_model_of_this_recipe(demo_model_dir):
    assert demo_model_dir == SHIPPED_DIR and is_complete(demo_model_dir)
    import os
    names = os.listdir(demo_model_dir)
    assert MARKER in names and 'config.json' in names
    assert any(n.endswith('.safetensors') for n in names)
    facts = facts_of(demo_model_dir)
    assert facts['recipe_hash'] == recipe_hash()
    assert facts['canonical_accuracy'] == 1.0
    # Far from a tie: float rounding on another CPU cannot flip a word.
    assert facts['min_logit_margin'] >= MARGIN, facts


@pytest.mark.parametrize('capability,threads', cpu_paths(),
                         ids=lambda v: str(v))
def test_the_shipped_model_is_right_on_every_cpu_path(capability, threads,
                                                      tmp_path):
    """What a new machine runs: ``demo_model DIR``, then ``--check DIR``."""
    env = {'ATEN_CPU_CAPABILITY': capability}
    status, output = run_python(['-m', 'camera_caption.tools.demo_model',
                                 str(tmp_path / 'demo')], env)
    assert status == 0 and 'copied to' in output, output
    status, output = run_python(['-m', 'camera_caption.tools.demo_model',
                                 '--check', '--threads', str(threads),
                                 str(tmp_path / 'demo')], env)
    assert status == 0, output
    assert f'all {24 * len(CHECK_SIZES) + 24 * 6} check frames right' in \
        output, output
    assert f'{capability.upper()} kernels, {threads} threads' in output
    margin = float(output.split('smallest logit margin ')[1].split()[0])
    assert margin >= MARGIN, output


def test_a_failed_check_is_one_line(tmp_path):
    status, output = run_python(['-m', 'camera_caption.tools.demo_model',
                                 '--check', str(tmp_path)], {})
    assert status == 1, output
    assert output.strip() == (f"demo_model: '{tmp_path}' holds no model "
                              '(config.json)'), output


@pytest.mark.parametrize('engine_name', ['fast', 'generate'])
@pytest.mark.parametrize('size', CHECK_SIZES, ids=lambda s: '%dx%d' % s)
def test_every_canonical_scene_is_captioned_right(engines, engine_name,
                                                  size):
    engine = engines[engine_name]
    scenes = canonical_scenes()
    frames = [rgb(render_scene(*scene, *size)) for scene in scenes]
    said = []
    for start in range(0, len(frames), 8):
        said += engine.caption(frames[start:start + 8])
    assert said == [caption_of(*scene) for scene in scenes]


def test_test_pattern_frames_are_captioned_right(engines):
    source = TestPatternSource(640, 480, fps=4.0)     # 12 frames a scene
    frames, truth = [], []
    for index in range(24 * 12):
        frame = source.read()
        if index % 3 == 0:
            frames.append(rgb(frame))
            truth.append(source.caption(index))
    said = []
    for start in range(0, len(frames), 8):
        said += engines['fast'].caption(frames[start:start + 8])
    assert said == truth


def test_random_positions_sizes_and_noise(engines):
    rng = np.random.default_rng(12345)
    frames, truth = [], []
    for i in range(96):
        scene = canonical_scenes()[i % 24]
        width = int(rng.integers(120, 800))
        height = int(width / [4 / 3, 16 / 9, 1.0][i % 3])
        frames.append(rgb(render_scene(*scene, width, height, rng=rng)))
        truth.append(caption_of(*scene))
    said = []
    for start in range(0, len(frames), 8):
        said += engines['fast'].caption(frames[start:start + 8])
    wrong = [(t, s) for t, s in zip(truth, said) if t != s]
    # Recipe v2 reads 9 of these 96 noisy, randomly placed scenes wrong
    # (small squares as circles); v1 read at most 3: to be won back.
    assert len(wrong) <= 12, wrong
