"""The start-up self-check accepts the fast path and rejects broken ones."""

from camera_caption.engine.blip2_captioner import Blip2Captioner
from camera_caption.engine.caption_model import CHECK_PROMPT
from camera_caption.engine.cuda_graphs import CudaGraphs
from camera_caption.engine.fast_blip2 import FastBlip2Opt
from camera_caption.engine.fast_blip2_captioner import (FastBlip2Captioner,
                                                        FastPathUnavailable)
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.engine.self_check import compare_with_generate
from camera_caption.tools.tiny_blip2 import build_tiny_blip2
import pytest
import torch

pytestmark = pytest.mark.unit


@pytest.fixture(scope='module')
def varied_dir(tmp_path_factory):
    return build_tiny_blip2(str(tmp_path_factory.mktemp('varied')), seed=1,
                            weight_scale=4.0)


@pytest.fixture
def engine(varied_dir):
    """Load an engine whose fast path passed its self-check (batch <= 2)."""
    plain = load_caption_model(varied_dir, device='cpu', max_new_tokens=8)
    engine = FastBlip2Captioner.upgrade(plain, max_batch=2)
    assert engine.self_check() == ''
    return engine


def test_rejects_a_broken_decoder(engine):
    engine.decoder.pre_norm = not engine.decoder.pre_norm
    problem = engine.self_check()
    assert problem.startswith("self-check (batch 1, prompt ''): sequence 0: "
                              'logits differ by'), problem


def test_rejects_a_path_that_stops_early(engine):
    generate = engine.decoder.generate
    engine.decoder.generate = lambda *a, **k: [r[:1] for r in generate(*a, **k)]
    problem = engine.self_check()
    assert 'stopped after 1 of 8 tokens' in problem, problem


def test_rejects_a_path_that_goes_wrong_after_four_tokens(engine):
    fast = engine.decoder
    step = fast._step
    start = fast.queries + len(engine.prompt_token_ids(''))

    def late_fault(tokens, position):
        logits = step(tokens, position)
        return logits + (position >= start + 4) * torch.linspace(
            0, 3, logits.shape[-1])

    fast._step = late_fault
    problem = engine.self_check()
    assert 'logits differ' in problem, problem
    # Found at the fault or later (on AVX2 kernels: step 7), never before.
    found = int(problem.split(' at step ')[1].split()[0].rstrip(')'))
    assert found >= 5, problem


def test_checks_every_batch_size_and_a_prompt(engine):
    fast = engine.decoder
    step, prefill = fast._step, fast.prefill

    def batch_two_fault(tokens, position):
        logits = step(tokens, position)
        return logits * 2 if tokens.shape[0] == 2 else logits

    fast._step = batch_two_fault
    assert engine.self_check().startswith("self-check (batch 2, prompt '')")
    fast._step = step

    def prompt_fault(embeds):
        logits = prefill(embeds)
        return -logits if embeds.shape[1] > fast.queries + 1 else logits

    fast.prefill = prompt_fault
    assert engine.self_check().startswith(
        f'self-check (batch 1, prompt {CHECK_PROMPT!r}): sequence 0: ')


def test_rejects_a_frame_preprocessor_off_the_processor(engine):
    engine.preprocess.mean = engine.preprocess.mean + 0.05
    assert 'FramePreprocessor differs from the processor' in \
        engine.self_check()


def test_a_failed_self_check_keeps_generate_and_says_why(varied_dir,
                                                         monkeypatch):
    monkeypatch.setattr(FastBlip2Opt, '_decoder_hidden', lambda self, h, *a, **k:
                        h * 0)
    engine = load_caption_model(varied_dir, device='cpu', max_new_tokens=8)
    with pytest.raises(FastPathUnavailable) as info:
        FastBlip2Captioner.upgrade(engine, max_batch=1)
    reason = str(info.value)
    assert reason.startswith('self-check (batch 1')
    assert type(engine) is Blip2Captioner
    assert engine.fallback_reason == reason
    assert engine.engine == f'generate ({reason})'
    assert len(engine.caption([_frame()], '')) == 1


def test_out_of_memory_while_building_keeps_generate(varied_dir,
                                                     monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory (test)')

    monkeypatch.setattr('camera_caption.engine.fast_blip2.fuse_linears', no_memory)
    engine = load_caption_model(varied_dir, device='cpu', max_new_tokens=8)
    with pytest.raises(FastPathUnavailable) as info:
        FastBlip2Captioner.upgrade(engine, max_batch=1)
    assert str(info.value) == ('out of memory: warm-up failed: '
                               'OutOfMemoryError: CUDA out of memory (test)')
    assert type(engine) is Blip2Captioner
    assert len(engine.caption([_frame()])) == 1


def _frame():
    import numpy as np
    return np.full((30, 40, 3), 90, np.uint8)


# -- the judgement itself, on made-up logits --------------------------------

EOS = [1]


def logits_for(rows, vocab=6, margin=4.0):
    """Logits whose argmax at each step is the row's token."""
    out = torch.zeros(len(rows), len(rows[0]), vocab)
    for r, row in enumerate(rows):
        for t, token in enumerate(row):
            out[r, t, token] = margin
    return out


def test_identical_runs_pass_and_a_near_tie_may_flip():
    reference = torch.tensor([[3, 4, 5, 1]])
    logits = logits_for(reference.tolist())
    assert compare_with_generate(reference, logits, [[3, 4, 5, 1]], logits,
                                 EOS, 1e-2) == ''
    tie = logits.clone()
    tie[0, 1, 2] = tie[0, 1, 4] - 0.05      # token 2 nearly ties at step 1
    assert compare_with_generate(reference, tie, [[3, 2, 2, 2, 2]], tie,
                                 EOS, 1e-2) == ''
    assert 'margin' in compare_with_generate(reference, logits,
                                             [[3, 2, 2, 2, 2]], logits,
                                             EOS, 1e-2)


def test_lengths_and_eos_must_match():
    reference = torch.tensor([[3, 4, 1, 0], [3, 4, 5, 2]])
    logits = logits_for(reference.tolist())
    assert compare_with_generate(reference, logits, [[3, 4, 1], [3, 4, 5, 2]],
                                 logits, EOS, 1e-2) == ''
    assert 'stopped after 2 of 3' in compare_with_generate(
        reference, logits, [[3, 4], [3, 4, 5, 2]], logits, EOS, 1e-2)
    assert 'ended after 4' in compare_with_generate(
        reference, logits, [[3, 4, 1], [3, 4, 5, 2, 2]], logits, EOS, 1e-2)
    assert 'token 2 is 2, generate() has 1' in compare_with_generate(
        reference, logits, [[3, 4, 2], [3, 4, 5, 2]], logits, EOS, 1e-2)


# -- cuda:N: the capture selects the model's device ------------------------

class RecordingCuda:
    """torch.cuda stand-in that records devices, streams and pools."""

    def __init__(self):
        self.current = torch.device('cuda', 0)
        self.events = []

    def device(self, device):
        cuda = self

        class Context:

            def __enter__(self):
                self.previous, cuda.current = cuda.current, device
                cuda.events.append(('enter', device))

            def __exit__(self, *exc):
                cuda.current = self.previous

        return Context()

    def Stream(self, device=None):  # noqa: N802 - torch.cuda's name
        self.events.append(('stream', device, self.current))
        return Stream(device or self.current)

    def current_stream(self, device=None):
        return Stream(device or self.current)

    def stream(self, stream):
        self.events.append(('use stream', stream.device, self.current))
        return _Null()

    def graph_pool_handle(self):
        self.events.append(('pool', self.current))
        return object()

    def CUDAGraph(self):  # noqa: N802 - torch.cuda's name
        return Graph()

    def graph(self, graph, pool=None, stream=None):
        self.events.append(('capture', stream.device, self.current, pool))
        return _Null()

    def synchronize(self, device=None):
        self.events.append(('synchronize', device))


class Stream:

    def __init__(self, device):
        self.device = device

    def wait_stream(self, other):
        assert other.device == self.device


class Graph:

    def replay(self):
        pass


class _Null:

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_capture_runs_on_the_models_device_with_its_stream_and_one_pool():
    cuda = RecordingCuda()
    one = torch.device('cuda', 1)
    graphs = CudaGraphs(one, cuda=cuda)
    steps = []
    for _ in range(2):
        replay, out = graphs.capture(lambda: steps.append(1) or
                                     torch.zeros(1))
    assert len(steps) == 6                  # 2 warm-up runs + 1 per capture
    captures = [e for e in cuda.events if e[0] == 'capture']
    assert [c[1:3] for c in captures] == [(one, one)] * 2
    assert captures[0][3] is captures[1][3] is graphs.pool
    assert [e for e in cuda.events if e[0] in ('stream', 'pool')] == [
        ('stream', one, one), ('pool', one)]
    assert all(e[1:] == (one, one) for e in cuda.events
               if e[0] == 'use stream')
    assert cuda.current == torch.device('cuda', 0)   # restored
    with graphs.context():
        assert cuda.current == one


def test_the_fast_path_captures_on_its_decoders_device(engine):
    fast = FastBlip2Opt(engine.model, max_batch=1, use_cuda_graph=True)
    assert isinstance(fast.graphs, CudaGraphs)
    assert fast.graphs.device == fast.device == \
        engine.model.language_model.get_input_embeddings().weight.device
