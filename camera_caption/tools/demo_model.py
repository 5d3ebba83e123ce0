"""
The demo model: a small BLIP-2 that says what the test pattern shows.

The package ships the weights that :mod:`camera_caption.tools.demo_training`
produced (0.3 M parameters, about 1.3 MB, with the processor and the
tokenizer, as ``save_pretrained`` wrote them) in ``demo_checkpoint/``, so
every machine captions with the very same model and nothing trains first::

    python -m camera_caption.tools.demo_model /tmp/demo-blip2    # a copy
    ros2 run camera_caption demo_model /tmp/demo-blip2
    python -m camera_caption.tools.demo_model --check /tmp/demo-blip2
    python -m camera_caption.tools.demo_model --train /tmp/mine [--threads 2]

``--check`` loads a directory through the real ``from_pretrained`` path,
captions every canonical scene at every camera size of ``CHECK_SIZES`` and
every test-pattern frame with ``generate()`` and with the fast path, and
passes only when all are right; it also reports the smallest teacher-forced
logit margin (how far the right word is ahead of the next best), which
says how much float rounding it would take to change a caption.
``--train`` trains a new one from the recipe (minutes on one CPU core).
"""

import argparse
import json
import os
import shutil
import sys

from camera_caption.frames import scenes
from camera_caption.tools.demo_training import (CHECK_SIZES,
                                                DemoTrainingError, MARKER,
                                                recipe_hash)

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'demo_checkpoint')
RETRAIN = ('python -m camera_caption.tools.demo_model --train '
           'camera_caption/tools/demo_checkpoint')


class DemoModelError(RuntimeError):
    """The demo model is missing, stale or wrong; the message says why."""


def facts_of(model_dir):
    """Return the training facts saved beside a demo model, or None."""
    try:
        with open(os.path.join(model_dir, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_complete(model_dir):
    """Whether ``model_dir`` holds a finished demo model of this recipe."""
    facts = facts_of(model_dir)
    return bool(facts) and facts.get('recipe_hash') == recipe_hash()


def shipped_model():
    """Return the directory of the shipped demo model, or raise why not."""
    facts = facts_of(SHIPPED_DIR)
    if facts is None:
        raise DemoModelError(f'the demo model is not installed ({SHIPPED_DIR}'
                             f' has no {MARKER})')
    if facts.get('recipe_hash') != recipe_hash():
        raise DemoModelError(
            'the shipped demo model was trained from recipe '
            f"{facts.get('recipe_hash')}, the code is now recipe "
            f'{recipe_hash()}: retrain it with {RETRAIN}')
    return SHIPPED_DIR


def _check_frames():
    """RGB frames that must be captioned right, and their captions."""
    import numpy as np
    from camera_caption.frames.frame_sources import TestPatternSource
    frames, truth = [], []
    for width, height in CHECK_SIZES:
        for scene in scenes.canonical_scenes():
            frame = scenes.render_scene(*scene, width, height)
            frames.append(np.ascontiguousarray(frame[..., ::-1]))
            truth.append(scenes.caption_of(*scene))
    pattern = TestPatternSource(640, 480, fps=2.0)
    for index in range(len(pattern.scenes) * pattern.frames_per_scene):
        frames.append(np.ascontiguousarray(pattern.read()[..., ::-1]))
        truth.append(pattern.caption(index))
    return frames, truth


def check_captions(model_dir, batch=8, threads=1):
    """
    Caption the check frames with generate() and the fast path.

    Returns ``{engine: [(wanted, said), ...]}`` of the wrong captions.
    """
    from camera_caption.engine.fast_blip2_captioner import (
        FastBlip2Captioner, FastPathUnavailable)
    from camera_caption.engine.model_loading import load_caption_model
    frames, truth = _check_frames()
    wrong = {}
    for name in ('generate', 'fast'):
        engine = load_caption_model(model_dir, device='cpu', dtype='float32',
                                    max_new_tokens=12, cpu_threads=threads)
        if name == 'fast':
            try:
                engine = FastBlip2Captioner.upgrade(engine, max_batch=batch)
            except FastPathUnavailable as exc:
                raise DemoModelError(f'the fast path refused the demo model: '
                                     f'{exc}') from None
        said = []
        for start in range(0, len(frames), batch):
            said += engine.caption(frames[start:start + batch])
        wrong[name] = [(w, s) for w, s in zip(truth, said) if w != s]
    return wrong


def logit_margin(model_dir):
    """
    Return the smallest teacher-forced logit margin on the check scenes.

    For every canonical scene at every check size and every test-pattern
    frame, and every word of its caption: the right token's logit minus
    the best other one.  Positive means every caption is right.
    """
    import torch
    from transformers import (AutoProcessor, Blip2ForConditionalGeneration)
    from camera_caption.tools.demo_recipe import _canonical_set, RECIPE
    from camera_caption.tools.demo_trainer import _Trainer
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Blip2ForConditionalGeneration.from_pretrained(model_dir).eval()
    trainer = _Trainer(model, processor.tokenizer, processor.image_processor)
    images, captions = _canonical_set(RECIPE['image_size'])
    ids = trainer.ids(captions)
    queries = model.config.num_query_tokens
    with torch.no_grad():
        logits = trainer.logits(trainer.image_embeds(trainer.pixels(images)),
                                ids)[:, queries:-1]
    target = ids[:, 1:]
    right = logits.gather(-1, target[..., None])[..., 0]
    others = logits.scatter(-1, target[..., None], float('-inf'))
    return float((right - others.max(-1).values).min())


def _copy(out_dir):
    source = shipped_model()
    if is_complete(out_dir):
        return f'{out_dir} already holds this demo model'
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(os.listdir(source)):
        if name != MARKER:
            shutil.copy2(os.path.join(source, name), out_dir)
    shutil.copy2(os.path.join(source, MARKER), out_dir)   # last: complete
    return (f'demo model (recipe {recipe_hash()}) copied to {out_dir}: use '
            f'it as model:={out_dir}')


def _check(model_dir, threads):
    if not os.path.isfile(os.path.join(model_dir, 'config.json')):
        raise DemoModelError(f"'{model_dir}' holds no model (config.json)")
    import torch
    torch.set_num_threads(threads)
    margin = logit_margin(model_dir)
    wrong = check_captions(model_dir, threads=threads)
    count = len(_check_frames()[1])
    where = (f'{torch.backends.cpu.get_cpu_capability()} kernels, '
             f'{torch.get_num_threads()} threads')
    bad = {name: w for name, w in wrong.items() if w}
    if bad:
        name, items = next(iter(bad.items()))
        raise DemoModelError(
            f'{model_dir}: {len(items)} of {count} check frames captioned '
            f"wrong by {name} ({where}), e.g. '{items[0][0]}' as "
            f"'{items[0][1]}'; smallest logit margin {margin:.2f}")
    return (f'{model_dir}: all {count} check frames right with generate() '
            f'and the fast path ({where}); smallest logit margin '
            f'{margin:.2f}')


def _train(out_dir, threads):
    from camera_caption.tools.demo_training import train_demo_model
    facts = train_demo_model(out_dir, threads=threads)
    # How far from a tie, written beside the weights (the marker last).
    facts['min_logit_margin'] = round(logit_margin(out_dir), 3)
    with open(os.path.join(out_dir, MARKER), 'w') as f:
        json.dump(facts, f, indent=1)
    return (f"trained in {facts['train_seconds']} s ({facts['steps']} "
            f"steps, {facts['torch_threads']} threads, "
            f"{facts['cpu_capability']} kernels): "
            f"{facts['canonical_scenes']} canonical and test-pattern frames "
            f"all right, {facts['random_accuracy']:.1%} of "
            f"{facts['random_scenes']} random scenes, smallest logit margin "
            f"{facts['min_logit_margin']:.2f}; saved to {out_dir}")


def main(argv=None):
    """Command line entry: copy, check or train the demo model."""
    parser = argparse.ArgumentParser(
        prog='python -m camera_caption.tools.demo_model',
        description='Write the shipped demo model (a BLIP-2 that knows the '
                    'test pattern) to a directory, check one, or train one.')
    parser.add_argument('out_dir', help='directory to write (or check)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--train', action='store_true',
                      help='train a new one from the recipe instead of '
                           'copying the shipped one (minutes)')
    mode.add_argument('--check', action='store_true',
                      help='check that a model captions every check frame '
                           'right')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads for --train and --check '
                             '(default: 1)')
    args = parser.parse_args(argv)
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()     # one line of output
    transformers_logging.set_verbosity_error()
    try:
        if args.train:
            print(_train(args.out_dir, args.threads or None))
        elif args.check:
            print(_check(args.out_dir, args.threads or 1))
        else:
            print(_copy(args.out_dir))
    except (DemoModelError, DemoTrainingError, OSError) as exc:
        print(f'demo_model: {exc}', file=sys.stderr)
        return 1
    print('it knows: a {%s} {%s} on a {%s} background' % (
        '|'.join(scenes.COLOURS), '|'.join(scenes.SHAPES),
        '|'.join(scenes.BACKGROUNDS)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
