"""
The fast path for BLIP-2 with an OPT decoder: static KV cache, greedy.

No ROS import.  Given a loaded ``Blip2ForConditionalGeneration`` whose
language model is OPT, :class:`FastBlip2Opt` runs the vision encoder,
Q-Former and projection as HF does, then decodes greedily with its own OPT
step over the model's own weights:

* the KV cache is preallocated (``max_batch`` x ``max_len``) and written in
  place, attention masks come from the position held in a device tensor,
  so the decode step has static shapes;
* q, k and v projections are fused into one matmul per layer (the HF
  modules keep working: their weights become views of the fused tensor),
  unless they were swapped for CPU kernels
  (:mod:`~camera_caption.engine.cpu_linears`), which it calls as they are;
* on CUDA the decode step is captured once per batch size in a
  ``torch.cuda.CUDAGraph`` at warm-up and replayed: one launch per token
  instead of hundreds of kernels issued from Python;
* each sequence stops at its own EOS; decoding ends when all have.

Which models may take this path is decided in
:mod:`~camera_caption.engine.fast_path_policy`; the weight fusion lives in
:mod:`~camera_caption.engine.opt_weights` and the frames' preprocessing in
:mod:`~camera_caption.engine.preprocess`.
"""

import contextlib

from camera_caption.engine.cuda_graphs import CudaGraphs
from camera_caption.engine.fast_path_policy import eos_ids, fast_path_reason
from camera_caption.engine.opt_weights import fuse_linears, opt_parts
from camera_caption.engine.video_blip import query_embeds
import torch
import torch.nn.functional as F


class _DoneFlag:
    """
    Whether every sequence has ended, read one step late on CUDA.

    On CUDA the flag of step ``i - 1`` is copied to pinned memory and read
    after step ``i`` was queued, so the GPU never waits for the host; the
    price is at most one extra step.  Elsewhere it is read at once.
    """

    def __init__(self, flag):
        self.flag = flag
        self.lagged = flag.device.type == 'cuda'
        if self.lagged:
            self.host = torch.zeros(2, dtype=torch.bool).pin_memory()
            self.events = [torch.cuda.Event(), torch.cuda.Event()]

    def push(self, i):
        """Note the flag after step ``i`` (queued)."""
        if self.lagged:
            self.host[i % 2].copy_(self.flag, non_blocking=True)
            self.events[i % 2].record()

    def done_after(self, i):
        """Whether all had ended after step ``i`` (waits for that step)."""
        if not self.lagged:
            return bool(self.flag)
        self.events[i % 2].synchronize()
        return bool(self.host[i % 2])


class FastBlip2Opt:
    """Greedy BLIP-2/OPT captioning with a static KV cache."""

    def __init__(self, model, max_batch=8, max_len=64, use_cuda_graph=None,
                 graphs=None, log=None):
        reason = fast_path_reason(model)
        if reason:
            raise ValueError(f'fast path unavailable: {reason}')
        self.model = model
        self.decoder, self.lm_head = opt_parts(model)
        text = model.config.text_config
        self.num_heads = text.num_attention_heads
        self.hidden = text.hidden_size
        self.head_dim = self.hidden // self.num_heads
        self.scaling = self.head_dim ** -0.5
        self.pre_norm = text.do_layer_norm_before
        self.queries = int(model.config.num_query_tokens)
        self.eos = eos_ids(model)
        self.max_batch = max_batch
        self.limit = int(text.max_position_embeddings)
        self.log = log or (lambda message: None)
        # The decoder's dtype and device: since transformers 4.51 a float16
        # BLIP-2 keeps query_tokens and the Q-Former in float32.
        weight = self.decoder.embed_tokens.weight
        self.device, self.dtype = weight.device, weight.dtype
        if graphs is None:
            if use_cuda_graph is None:
                use_cuda_graph = self.device.type == 'cuda'
            graphs = CudaGraphs(self.device) if use_cuda_graph else None
        self.graphs = graphs
        self.use_cuda_graph = graphs is not None
        self.layers = []
        for layer in self.decoder.layers:
            attn = layer.self_attn
            projections = [attn.q_proj, attn.k_proj, attn.v_proj]
            # Swapped for CPU kernels (cpu_linears): one call each.
            qkv = fuse_linears(projections) if all(
                type(p) is torch.nn.Linear for p in projections) else None
            self.layers.append((layer, qkv))
        device = self.device
        self._eos = torch.tensor(self.eos or [-1], device=device)
        self._tokens = torch.zeros(max_batch, dtype=torch.long, device=device)
        self._position = torch.zeros((), dtype=torch.long, device=device)
        self._done = torch.zeros(max_batch, dtype=torch.bool, device=device)
        self._all_done = torch.zeros((), dtype=torch.bool, device=device)
        self._prompts = {}
        self._runs = {}
        self.max_len = 0
        self._allocate(min(max_len, self.limit))
        self._flag = _DoneFlag(self._all_done)

    def _allocate(self, max_len):
        self._runs.clear()
        self.k_cache = self.v_cache = None
        if self.graphs is not None:
            self.graphs.reset()
        shape = (len(self.layers), self.max_batch, self.num_heads, max_len,
                 self.head_dim)
        self.k_cache = torch.zeros(shape, device=self.device,
                                   dtype=self.dtype)
        self.v_cache = torch.zeros_like(self.k_cache)
        self._positions = torch.arange(max_len, device=self.device)
        # Generated tokens, at their positions in the sequence.
        self._out = torch.zeros(self.max_batch, max_len + 1,
                                dtype=torch.long, device=self.device)
        self.max_len = max_len

    def ensure_capacity(self, total):
        """
        Make the KV cache hold ``total`` tokens, growing it if needed.

        Growing reallocates the cache and captures again the graphs of the
        batch sizes captured so far (logged).  Raises ValueError beyond the
        decoder's max_position_embeddings.
        """
        if total <= self.max_len:
            return
        if total > self.limit:
            raise ValueError(f"{total} tokens exceed the decoder's "
                             f'{self.limit} positions')
        sizes = sorted(self._runs, reverse=True)
        old = self.max_len
        self._allocate(min(self.limit, -(-total // 16) * 16))
        self.log(f'fast path: KV cache grown from {old} to {self.max_len} '
                 f'tokens (queries + prompt + max_new_tokens = {total})')
        for b in sizes:
            self._runner(b)

    # -- building blocks -------------------------------------------------

    def _attention(self, li, x, write_slice, mask, causal=False):
        layer, qkv = self.layers[li]
        b, t, _ = x.shape
        if qkv is None:
            attn = layer.self_attn
            q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        else:
            q, k, v = F.linear(x, *qkv).split(self.hidden, dim=-1)
        q = (q * self.scaling).view(b, t, self.num_heads, self.head_dim) \
            .transpose(1, 2)
        k = k.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k_all, v_all = write_slice(li, k, v)
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask,
                                             is_causal=causal, scale=1.0)
        out = out.transpose(1, 2).reshape(b, t, self.hidden)
        return layer.self_attn.out_proj(out)

    def _decoder_hidden(self, hidden, write_slice, mask, causal=False):
        """Run the decoder layers + final norm/projection: hidden states."""
        for li, (layer, _) in enumerate(self.layers):
            residual = hidden
            if self.pre_norm:
                hidden = layer.self_attn_layer_norm(hidden)
            hidden = residual + self._attention(li, hidden, write_slice,
                                                mask, causal)
            if not self.pre_norm:
                hidden = layer.self_attn_layer_norm(hidden)
            residual = hidden
            if self.pre_norm:
                hidden = layer.final_layer_norm(hidden)
            hidden = layer.fc2(torch.relu(layer.fc1(hidden)))
            hidden = residual + hidden
            if not self.pre_norm:
                hidden = layer.final_layer_norm(hidden)
        if self.decoder.final_layer_norm is not None:
            hidden = self.decoder.final_layer_norm(hidden)
        if self.decoder.project_out is not None:
            hidden = self.decoder.project_out(hidden)
        return hidden

    def _embed_positions(self, positions):
        return self.decoder.embed_positions.weight[positions + 2]

    def _inputs(self, embeds):
        if self.decoder.project_in is not None:
            embeds = self.decoder.project_in(embeds)
        return embeds

    # -- prefill and step ------------------------------------------------

    def encode(self, pixel_values):
        """
        Vision encoder + Q-Former + projection: (B, queries, D).

        ``pixel_values`` (B, 3, H, W) are stills; (B, N, 3, H, W) are
        clips, encoded VideoBLIP-style in one batched encoder call (see
        :mod:`~camera_caption.engine.video_blip`).
        """
        return query_embeds(self.model, pixel_values).to(self.dtype)

    def prefill(self, embeds):
        """Run the prompt (B, L, D) through the decoder; last logits out."""
        b, length, _ = embeds.shape
        hidden = self._inputs(embeds) + self._embed_positions(
            self._positions[:length])

        def write(li, k, v):
            self.k_cache[li, :b, :, :length] = k
            self.v_cache[li, :b, :, :length] = v
            return k, v

        hidden = self._decoder_hidden(hidden, write, None, causal=length > 1)
        return self.lm_head(hidden[:, -1])     # only the last position's

    def _step(self, tokens, position):
        """Logits of one decode step at ``position`` (a 0-d tensor)."""
        b = tokens.shape[0]
        embeds = self.decoder.embed_tokens(tokens)[:, None]
        hidden = self._inputs(embeds) + self._embed_positions(
            position.view(1))
        visible = self._positions <= position
        mask = torch.zeros(self.max_len, dtype=hidden.dtype,
                           device=self.device).masked_fill(
                               ~visible, float('-inf')).view(1, 1, 1, -1)
        index = position.view(1)

        def write(li, k, v):
            k_cache = self.k_cache[li, :b]
            v_cache = self.v_cache[li, :b]
            k_cache.index_copy_(2, index, k)
            v_cache.index_copy_(2, index, v)
            return k_cache, v_cache

        return self.lm_head(self._decoder_hidden(hidden, write, mask)[:, -1])

    def _record(self, b, logits, position):
        """Greedy token from ``logits`` for ``position``: keep and feed."""
        token = logits.argmax(dim=-1)
        self._tokens[:b].copy_(token)
        self._out[:b].index_copy_(1, position.view(1), token[:, None])
        done = self._done[:b]
        done |= (token[:, None] == self._eos).any(dim=-1)
        self._all_done.copy_(done.all())

    def _runner(self, b):
        """
        Return the decode step for batch ``b``: (run, static logits).

        It reads the token and position from device buffers, writes the
        greedy token back, marks sequences at EOS and advances the
        position, so that a CUDA graph replays all of it as one launch.
        Captured (once per size) before any prefill, since capturing runs
        warm-up steps that write the cache.
        """
        if b not in self._runs:

            def step():
                logits = self._step(self._tokens[:b], self._position)
                self._record(b, logits, self._position + 1)
                self._position += 1
                return logits

            if self.graphs is None:
                self._runs[b] = (step, None)
            else:
                self._position.zero_()
                replay, logits = self.graphs.capture(step)
                self._runs[b] = (replay, logits)
        return self._runs[b]

    def _context(self):
        if self.graphs is not None:
            return self.graphs.context()
        return contextlib.nullcontext()

    def warm_up(self, batch_sizes=(1,)):
        """Capture the decode step for these batch sizes (CUDA graphs)."""
        if self.graphs is None:
            return
        with torch.inference_mode(), self._context():
            # Largest first: the smaller graphs reuse the shared pool.
            for b in sorted({min(b, self.max_batch) for b in batch_sizes},
                            reverse=True):
                self._runner(b)

    def prompt_tensor(self, prompt_ids):
        """Return the prompt ids on the device (copied once per prompt)."""
        key = tuple(int(i) for i in prompt_ids)
        if key not in self._prompts:
            self._prompts[key] = torch.tensor(key, dtype=torch.long).to(
                self.device)
        return self._prompts[key]

    def _start(self, pixel_values, prompt_ids, max_new_tokens):
        """Size the cache, capture, encode and prefill: (b, runner, len)."""
        b = pixel_values.shape[0]
        if b > self.max_batch:
            raise ValueError(f'batch {b} > max_batch {self.max_batch}')
        if max_new_tokens < 1:
            raise ValueError('max_new_tokens must be at least 1')
        prompt = self.prompt_tensor(prompt_ids)
        length = self.queries + prompt.numel()
        self.ensure_capacity(length + max_new_tokens)
        runner = self._runner(b)          # capture before the prefill
        embeds = self.encode(pixel_values)
        if prompt.numel():
            text = self.decoder.embed_tokens(prompt)[None].expand(b, -1, -1)
            embeds = torch.cat([embeds, text.to(embeds.dtype)], dim=1)
        self._done.zero_()
        logits = self.prefill(embeds)
        self._position.fill_(length)
        return b, runner, length, logits

    # -- greedy decoding -------------------------------------------------

    @torch.inference_mode()
    def generate(self, pixel_values, prompt_ids, max_new_tokens,
                 ignore_eos=False):
        """
        Greedy tokens for each image: a list of lists of new token ids.

        ``prompt_ids`` are the text ids the processor puts after the image
        tokens (BOS first if the tokenizer adds one; may be empty), shared
        by the batch.  A sequence ends at (and keeps) its EOS token, as
        ``generate()`` returns it; ``ignore_eos`` forces the full length
        (benchmarks).
        """
        with self._context():
            b, (run, _), length, logits = self._start(
                pixel_values, prompt_ids, max_new_tokens)
            self._record(b, logits, self._position)
            steps = 1
            flag, poll = self._flag, not ignore_eos
            flag.push(0)
            for i in range(1, max_new_tokens):
                if poll and not flag.lagged and flag.done_after(i - 1):
                    break
                run()
                steps += 1
                flag.push(i)
                if poll and flag.lagged and flag.done_after(i - 1):
                    break
            tokens = self._out[:b, length:length + steps].tolist()
        return [_cut_at_eos(row, self.eos, ignore_eos) for row in tokens]

    @torch.inference_mode()
    def score(self, pixel_values, prompt_ids, tokens):
        """
        Teacher-forced logits: (B, T, vocab) float32 for ``tokens`` (B, T).

        Step ``t``'s logits are the decoder's after the prompt and
        ``tokens[:, :t]``, computed by the same prefill and decode step
        (the same CUDA graph) as :meth:`generate`.
        """
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        steps = tokens.shape[1]
        with self._context():
            b, (run, out), _, logits = self._start(pixel_values, prompt_ids,
                                                   steps)
            forced = tokens.to(self.device)
            result = [logits.float()]
            for t in range(1, steps):
                self._tokens[:b].copy_(forced[:, t - 1])
                logits = run()
                # A copy: a graph's output buffer is overwritten each step.
                result.append((logits if out is None else out).to(
                    torch.float32, copy=True))
        return torch.stack(result, dim=1)


def _cut_at_eos(row, eos, ignore_eos):
    if ignore_eos:
        return row
    for i, token in enumerate(row):
        if token in eos:
            return row[:i + 1]
    return row


def cut_at_eos(row, eos):
    """Tokens of ``row`` up to and including the first EOS."""
    return _cut_at_eos(list(row), eos, False)
