"""
Train, offline, a small BLIP-2 whose captions are true of the test pattern.

The model has the real architecture (``Blip2ForConditionalGeneration``:
ViT + Q-Former + OPT decoder) at toy size and a byte-level BPE tokenizer
trained on its captions.  It learns the scenes of
:mod:`camera_caption.frames.scenes`: a red, green, blue or yellow circle,
square or triangle on a white or black background, anywhere in the frame,
at any size the camera delivers, and says e.g. ``a red circle on a white
background``.  It is saved with ``save_pretrained`` (model and processor)
and loads like any checkpoint.

The package ships the weights this recipe produced
(:mod:`camera_caption.tools.demo_model`), so that every machine captions
with the very same model; training is the tool that made them, and is
tested on its own (``demo_model --train DIR``).

Training is seeded and runs in two stages: the ViT with auxiliary
colour/shape/background heads, then the Q-Former and OPT on the frozen
ViT's output.  Each stage goes on, for a bounded number of rounds at a
falling learning rate, until every canonical scene at every camera size of
:data:`CHECK_SIZES` and every test-pattern frame is captioned right and at
most 5 % of held-out random scenes are not; otherwise it raises
:class:`DemoTrainingError`.  Float rounding differs between CPUs (AVX-512,
AVX2, plain kernels) and thread counts, so the weights differ from machine
to machine; the recipe leaves rounds to spare so that it converges on all.
"""

import hashlib
import json
import os
import time

from camera_caption.frames import scenes
from camera_caption.tools.demo_recipe import (_canonical_set, _corpus,
                                              _labels_of, _resize,
                                              _scene_set, CHECK_SIZES,
                                              MARKER, RECIPE)
from camera_caption.tools.demo_trainer import (_Average, _init_edge_filters,
                                               _Trainer)

__all__ = ['CHECK_SIZES', 'DemoTrainingError', 'MARKER', 'RECIPE',
           'recipe_hash', 'train_demo_model']


class DemoTrainingError(RuntimeError):
    """Training did not converge; the message says where."""


def recipe_hash():
    """
    Return a short hash of what decides the trained weights.

    The recipe, the scene renderer and the training code; not the torch
    and transformers versions (the shipped weights load in all of them),
    the command line or the thread count.
    """
    import inspect
    from camera_caption.frames import frame_sources
    from camera_caption.tools import tiny_blip2
    digest = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    with open(scenes.__file__, 'rb') as f:
        digest.update(f.read())
    for code in (_resize, _scene_set, _canonical_set, _labels_of,
                 _init_edge_filters, _Average, _make_portable,
                 _Trainer, train_demo_model, frame_sources.TestPatternSource,
                 tiny_blip2.build_tokenizer, tiny_blip2.build_config):
        digest.update(inspect.getsource(code).encode())
    return digest.hexdigest()[:16]


def _not_converged(stage, rounds, must, other):
    wanted, said = (must + other)[0]
    return (f'the {stage} stage did not converge in {rounds} rounds: '
            f'{len(must)} canonical and {len(other)} random check scenes '
            f"wrong (e.g. '{wanted}' read as '{said}')")


def _make_portable(out_dir, image_processor, num_query_tokens):
    """
    Rewrite the processor files so that transformers 4.49 to 5.x load them.

    transformers 5 nests the image processor in processor_config.json and
    names its own tokenizer class; 4.x reads preprocessor_config.json and
    knows PreTrainedTokenizerFast, which 5.x still loads.
    """
    image_processor.to_json_file(
        os.path.join(out_dir, 'preprocessor_config.json'))
    with open(os.path.join(out_dir, 'processor_config.json'), 'w') as f:
        json.dump({'num_query_tokens': num_query_tokens,
                   'processor_class': 'Blip2Processor'}, f, indent=2)
    path = os.path.join(out_dir, 'tokenizer_config.json')
    with open(path) as f:
        tokenizer_config = json.load(f)
    tokenizer_config['tokenizer_class'] = 'PreTrainedTokenizerFast'
    with open(path, 'w') as f:
        json.dump(tokenizer_config, f, indent=2)


def train_demo_model(out_dir, log=print, threads=None):
    """
    Train the demo model and save it (model + processor) to ``out_dir``.

    Returns a dict of facts (seconds, steps, accuracy), also written to
    ``out_dir``/demo_model.json last, so that its presence means the
    directory is complete.  ``threads`` (default: the recipe's) is the
    torch thread count; it changes float rounding, not the recipe.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import (Blip2ForConditionalGeneration, Blip2Processor,
                              BlipImageProcessor)
    from camera_caption.tools.tiny_blip2 import build_config, build_tokenizer

    start = time.monotonic()
    r = RECIPE
    previous_threads = torch.get_num_threads()
    threads = threads or r['threads']
    torch.set_num_threads(threads)
    torch.manual_seed(r['seed'])
    generator = torch.Generator().manual_seed(r['seed'])
    rng = np.random.default_rng(r['seed'])
    try:
        tokenizer = build_tokenizer(corpus=_corpus())
        config = build_config(
            len(tokenizer), tokenizer.convert_tokens_to_ids('<image>'),
            tokenizer.pad_token_id, tokenizer.eos_token_id,
            num_query_tokens=r['num_query_tokens'],
            image_size=r['image_size'], patch_size=r['patch_size'],
            hidden_size=r['hidden_size'],
            intermediate_size=r['intermediate_size'],
            num_layers=r['num_layers'], num_heads=r['num_heads'],
            dropout=0.0)
        model = Blip2ForConditionalGeneration(config)
        _init_edge_filters(model, r['edge_filters'], r['edge_share'])
        image_processor = BlipImageProcessor(
            size={'height': r['image_size'], 'width': r['image_size']})
        trainer = _Trainer(model, tokenizer, image_processor)
        # Auxiliary heads (not saved): colour, shape and background from
        # the mean image feature, so that the ViT learns them fast.
        counts = (len(scenes.COLOURS), len(scenes.SHAPES),
                  len(scenes.BACKGROUNDS))
        aux = torch.nn.Linear(r['hidden_size'], sum(counts))

        images, captions, labels = _scene_set(rng, r['train_images'],
                                              r['image_size'])
        must_images, must_captions = _canonical_set(r['image_size'])
        # The scenes that must be right are trained on too, beside the
        # random ones, a few times over.
        repeat = r['must_repeat']
        images = torch.cat([images] + [must_images] * repeat)
        captions = captions + must_captions * repeat
        labels = torch.cat([labels] + [_labels_of(must_captions)] * repeat)
        ids = trainer.ids(captions)
        check_images, check_captions, _ = _scene_set(
            rng, r['check_images'], r['image_size'])
        log(f'rendered {len(images)} training scenes in '
            f'{time.monotonic() - start:.1f} s')

        def aux_loss(features, batch):
            logits = aux(features).split(counts, dim=-1)
            return sum(F.cross_entropy(part, labels[batch, i]) * weight
                       for i, (part, weight) in enumerate(
                           zip(logits, r['aux_weights'])))

        def verdict(said, wanted):
            return [(w, s) for w, s in zip(wanted, said) if w != s]

        def check(describe):
            must = verdict(describe(must_images), must_captions)
            other = verdict(describe(check_images), check_captions)
            return must, other, (not must and len(other) <= r[
                'check_tolerance'] * len(check_captions))

        def aux_captions(batch_images):
            with torch.no_grad():
                parts = aux(trainer.features(trainer.pixels(
                    batch_images))).split(counts, dim=-1)
            names = (list(scenes.COLOURS), scenes.SHAPES,
                     list(scenes.BACKGROUNDS))
            picks = [part.argmax(-1).tolist() for part in parts]
            return [scenes.caption_of(*(n[i] for n, i in zip(names, p)))
                    for p in zip(*picks)]

        # Stage 1: the ViT (and the auxiliary heads) learn what is in the
        # frame, until they tell every check scene right.
        # Checked (and kept) are the weights' running average, which moves
        # far less from one step to the next than the weights themselves.
        model.train()
        vision_params = list(model.vision_model.parameters()) + list(
            aux.parameters())
        optimizer = torch.optim.AdamW(vision_params, lr=r['lr'],
                                      weight_decay=0.01)
        average = _Average(vision_params, r['average_decay'])
        steps = 0
        for rounds in range(1, r['max_rounds'] + 1):
            for group in optimizer.param_groups:
                group['lr'] = r['lr'] * r['round_lr'] ** (rounds - 1)
            for _ in range(r['vision_steps']):
                batch = torch.randint(len(images), (r['batch'],),
                                      generator=generator)
                loss = aux_loss(trainer.features(trainer.pixels(
                    images[batch], r['pixel_noise'], generator)), batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                average.update()
                steps += 1
            model.eval()
            average.swap()
            must, other, ok = check(aux_captions)
            if not ok:
                average.swap()
            model.train()
            log(f'vision round {rounds}: loss {loss.item():.4f}, '
                f'{len(must)} + {len(other)} check scenes wrong '
                f'({time.monotonic() - start:.0f} s)')
            if ok:
                break
        if not ok:
            raise DemoTrainingError(_not_converged('vision', rounds, must,
                                                   other))

        # Stage 2: the ViT frozen, its output computed once; Q-Former,
        # projection and OPT learn to say it.
        model.vision_model.requires_grad_(False)
        model.vision_model.eval()
        with torch.no_grad():
            embeds = torch.cat([trainer.image_embeds(trainer.pixels(
                chunk, r['pixel_noise'], generator))
                for chunk in images.split(500)])
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=r['lr'], weight_decay=0.01)
        average = _Average(params, r['average_decay'])
        for rounds in range(1, r['max_rounds'] + 1):
            for group in optimizer.param_groups:
                group['lr'] = r['lr'] * r['round_lr'] ** (rounds - 1)
            for _ in range(r['language_steps']):
                batch = torch.randint(len(images), (r['batch'],),
                                      generator=generator)
                loss = trainer.caption_loss(embeds[batch], ids[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                average.update()
                steps += 1
            model.eval()
            average.swap()
            must, other, ok = check(lambda x: trainer.greedy(
                trainer.pixels(x), ids.shape[1] - 1))
            if not ok:
                average.swap()
            model.train()
            log(f'language round {rounds}: loss {loss.item():.4f}, '
                f'{len(must)} + {len(other)} check scenes wrong '
                f'({time.monotonic() - start:.0f} s)')
            if ok:
                break
        if not ok:
            raise DemoTrainingError(_not_converged('language', rounds, must,
                                                   other))
        model.requires_grad_(True)
        model.eval()
        accuracy = 1 - len(other) / len(check_captions)
        facts = {'recipe_hash': recipe_hash(), 'steps': steps,
                 'canonical_scenes': len(must_captions),
                 'canonical_accuracy': 1.0,
                 'random_scenes': len(check_captions),
                 'random_accuracy': round(accuracy, 4),
                 'train_seconds': round(time.monotonic() - start, 1),
                 'torch_threads': threads,
                 'cpu_capability': torch.backends.cpu.get_cpu_capability(),
                 'torch': torch.__version__}
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir)
        Blip2Processor(image_processor=image_processor, tokenizer=tokenizer,
                       num_query_tokens=config.num_query_tokens
                       ).save_pretrained(out_dir)
        _make_portable(out_dir, image_processor, config.num_query_tokens)
        with open(os.path.join(out_dir, MARKER), 'w') as f:
            json.dump(facts, f, indent=1)
        return facts
    finally:
        torch.set_num_threads(previous_threads)
