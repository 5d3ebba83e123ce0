"""
Clip captions: VideoBLIP-style encoding against a reference, and sampling.

The reference is written here from the HF modules alone: every frame
through the vision encoder, the patch tokens of a clip concatenated, the
Q-Former, the projection, and the language model's generate() on
inputs_embeds.  The engine must give the same tokens on generate() and on
the fast path, for a checkpoint saved the way VideoBLIP saves them.
"""

import threading

from camera_caption.engine.fast_blip2_captioner import FastBlip2Captioner
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.frames.latest_frame import Frame
from camera_caption.pipeline.caption_worker import CaptionWorker
from camera_caption.pipeline.clip_ring import ClipRing, timed_clip
from camera_caption.pipeline.settings import CaptionSettings
from camera_caption.tools.tiny_blip2 import build_tiny_blip2, TINY_IMAGE_SIZE
import numpy as np
import pytest
from tiny_families import save_as_videoblip
import torch

pytestmark = pytest.mark.unit

PROMPTS = ['', 'question: what is happening? answer:']
MAX_NEW = 8


@pytest.fixture(scope='module')
def videoblip_dir(tmp_path_factory):
    path = build_tiny_blip2(str(tmp_path_factory.mktemp('videoblip')),
                            seed=1, weight_scale=4.0)
    return save_as_videoblip(path)


def clips(count, frames, seed):
    """Clips of model-sized frames (no resize: pixels match exactly)."""
    rng = np.random.default_rng(seed)
    size = (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3)
    return [[rng.integers(0, 256, size, dtype=np.uint8)
             for _ in range(frames)] for _ in range(count)]


def reference(model, processor, clip, prompt):
    """Run VideoBLIP by hand from the HF modules: new token ids of one clip."""
    with torch.no_grad():
        patches = []
        for frame in clip:
            pixels = processor.image_processor(
                [frame], return_tensors='pt')['pixel_values']
            patches.append(model.vision_model(
                pixel_values=pixels).last_hidden_state)
        image_embeds = torch.cat(patches, dim=1)       # along the sequence
        query = model.qformer(
            query_embeds=model.query_tokens,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1],
                                              dtype=torch.long),
        ).last_hidden_state
        queries = model.language_projection(query)
        ids = processor.tokenizer([prompt], return_tensors='pt')['input_ids']
        embeds = torch.cat([queries,
                            model.get_input_embeddings()(ids)], dim=1)
        out = model.language_model.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
            max_new_tokens=MAX_NEW, do_sample=False, num_beams=1)
    row = out[0].tolist()
    eos = model.config.text_config.eos_token_id
    return row[:row.index(eos) + 1] if eos in row else row


def texts(processor, rows):
    return [t.strip() for t in processor.batch_decode(
        rows, skip_special_tokens=True)]


@pytest.fixture(scope='module')
def videoblip(videoblip_dir):
    return load_caption_model(videoblip_dir, device='cpu', dtype='float32',
                              max_new_tokens=MAX_NEW)


def test_videoblip_checkpoint_loads_as_blip2_and_is_recognised(videoblip):
    assert type(videoblip.model).__name__ == 'Blip2ForConditionalGeneration'
    assert videoblip.video_checkpoint


def test_clip_captions_equal_the_reference_on_generate_and_fast(videoblip):
    engine = videoblip
    batch = clips(2, 4, seed=3)
    seen = set()
    for prompt in PROMPTS:
        expected = texts(engine.processor,
                         [reference(engine.model, engine.processor, clip,
                                    prompt) for clip in batch])
        seen.update(expected)
        on_generate = engine.caption(batch, prompt, MAX_NEW)
        fast = FastBlip2Captioner.upgrade(engine, max_batch=2,
                                          warm_up=False)
        on_fast = fast.caption(batch, prompt, MAX_NEW)
        prepared = fast.caption(
            [[fast.prepare(f) for f in clip] for clip in batch],
            prompt, MAX_NEW)
        del fast
        assert on_generate == expected, prompt
        assert on_fast == expected, prompt
        assert prepared == expected, prompt
    # The tiny random model must not say the same for everything.
    assert len(seen) >= 3, seen


def test_clip_queries_are_the_concatenated_patches_through_the_qformer(
        videoblip):
    """Continuous check: the fast path's clip encoding, one encoder call."""
    from camera_caption.engine.fast_blip2 import FastBlip2Opt
    engine = videoblip
    model = engine.model
    batch = clips(3, 5, seed=7)
    pixels = engine._clip_pixels(batch)
    assert tuple(pixels.shape) == (3, 5, 3, TINY_IMAGE_SIZE,
                                   TINY_IMAGE_SIZE)
    calls = []
    hook = model.vision_model.register_forward_hook(
        lambda module, args, kwargs=None: calls.append(1))
    try:
        with torch.no_grad():
            got = FastBlip2Opt(model, max_batch=3).encode(pixels)
    finally:
        hook.remove()
    assert len(calls) == 1                 # N frames: one batched call
    with torch.no_grad():
        for row, clip in zip(got, pixels):
            patches = torch.cat([model.vision_model(
                pixel_values=frame[None]).last_hidden_state
                for frame in clip], dim=1)
            query = model.qformer(
                query_embeds=model.query_tokens,
                encoder_hidden_states=patches,
                encoder_attention_mask=torch.ones(patches.shape[:-1],
                                                  dtype=torch.long),
            ).last_hidden_state
            want = model.language_projection(query)[0]
            assert torch.allclose(row, want, atol=1e-5), \
                float((row - want).abs().max())
    # Not the newest frame alone: the clip's other frames count.
    with torch.no_grad():
        alone = FastBlip2Opt(model, max_batch=3).encode(pixels[:, -1:])
    assert float((alone - got).abs().max()) > 1e-3


def test_ring_samples_n_frames_evenly_over_the_window_newest_last():
    rate, frames, seconds = 30.0, 5, 2.0
    ring = ClipRing(frames, seconds)
    stamps = [100.0 + i / rate for i in range(int(6 * rate))]   # 6 s
    for stamp in stamps:
        ring.add(stamp, ('frame', stamp))
    # Bounded: about 4 items per clip step over the window, not 60 frames.
    assert len(ring) <= 4 * (frames - 1) * 1.5 + 3
    clip = ring.sample()
    newest = stamps[-1]
    assert len(clip) == frames
    assert clip[-1] == (newest, ('frame', newest))
    gap = seconds / (frames - 1)
    for i, (stamp, item) in enumerate(clip):
        assert item == ('frame', stamp)
        target = newest - seconds + i * gap
        # Within the ring's spacing (a quarter step) plus one frame period.
        assert abs(stamp - target) <= gap / 4 + 1 / rate, (i, stamp, target)
    spans = np.diff([s for s, _ in clip])
    assert spans.min() > gap / 2 and spans.max() < gap * 1.5


def test_a_clip_goes_with_its_span_and_a_repeated_frame_with_the_window():
    settings = CaptionSettings(clip_frames=3, clip_seconds=2.0)
    clip = timed_clip([(10.0, 'a'), (10.4, 'b'), (11.5, 'c')], settings)
    assert (clip, clip.seconds) == (['a', 'b', 'c'], 1.5)
    clip = timed_clip([(10.0, 'a')] * 3, settings)      # captioning starts
    assert (clip, clip.seconds) == (['a'] * 3, 2.0)


def test_ring_until_and_a_short_ring_repeat_frames():
    ring = ClipRing(4, 3.0)
    for stamp in (10.0, 10.5, 11.0):
        ring.add(stamp, stamp)
    clip = ring.sample(until=10.5)
    assert [s for s, _ in clip][-1] == 10.5
    assert len(clip) == 4 and clip[0][0] == 10.0
    ring.add(5.0, 5.0)                     # the clock went back: start over
    assert ring.sample() == [(5.0, 5.0)] * 4


def test_worker_captions_clips_of_prepared_frames_with_their_stamps():
    rate = 4.0
    settings = CaptionSettings(clip_frames=3, clip_seconds=1.0,
                               rate_hz=100.0)
    calls, results, done = [], [], threading.Event()

    def caption_fn(inputs, prompt, max_new_tokens, system_prompt=''):
        calls.append(inputs)
        return ['a clip'] * len(inputs)

    def on_caption(result):
        results.append(result)
        done.set()

    worker = CaptionWorker(caption_fn, on_caption, lambda *a: None, settings,
                           prepare_fn=lambda image: ('prepared',
                                                     int(image[0, 0, 0])))
    for i in range(25):                    # 6 s at 4 Hz
        image = np.full((4, 4, 3), i, np.uint8)
        worker.submit(Frame(image, 50.0 + i / rate, 'cam', 'image_raw'))
    worker.start()
    try:
        assert done.wait(10.0), 'no clip captioned'
    finally:
        worker.stop()
    (clip,) = calls[0]
    assert clip == [('prepared', 20), ('prepared', 22), ('prepared', 24)]
    assert clip.seconds == 1.0             # its span, for video models
    result = results[0]
    assert (result.clip_first, result.clip_last, result.clip_frames) == (
        55.0, 56.0, 3)
    assert result.frame.stamp == 56.0
