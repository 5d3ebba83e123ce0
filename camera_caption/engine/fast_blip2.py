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
  modules keep working: their weights become views of the fused tensor);
* on CUDA the decode step is captured once per batch size in a
  ``torch.cuda.CUDAGraph`` at warm-up and replayed: one launch per token
  instead of hundreds of kernels issued from Python;
* each sequence stops at its own EOS; decoding ends when all have.

:func:`fast_path_reason` says why a model cannot take this path (other
decoders, sampling, beam search, logits processors); callers then use
``generate()``.  :class:`FramePreprocessor` turns uint8 frames into
``pixel_values`` with torch on the model's device, as the BLIP image
processor does (resize bicubic, rescale, normalise) without PIL.
"""

import torch
import torch.nn.functional as F

# generation_config fields that add logits processors or change the search.
_NEUTRAL = {
    'do_sample': (False, None), 'num_beams': (1, None),
    'num_beam_groups': (1, None), 'repetition_penalty': (1.0, None),
    'no_repeat_ngram_size': (0, None), 'min_length': (0, None),
    'min_new_tokens': (0, None), 'bad_words_ids': (None, []),
    'suppress_tokens': (None, []), 'begin_suppress_tokens': (None, []),
    'forced_bos_token_id': (None,), 'forced_eos_token_id': (None,),
    'sequence_bias': (None,), 'exponential_decay_length_penalty': (None,),
    'guidance_scale': (None, 1.0), 'penalty_alpha': (None,),
    'stop_strings': (None,), 'renormalize_logits': (False, None),
}


def fast_path_reason(model):
    """Return '' if ``model`` can use the fast path, else why not."""
    config = getattr(model, 'config', None)
    if getattr(config, 'model_type', '') != 'blip-2':
        return f'model type {getattr(config, "model_type", "?")!r} is not ' \
            'blip-2'
    if getattr(config.text_config, 'model_type', '') != 'opt':
        return f'language model {config.text_config.model_type!r} is not OPT'
    text = config.text_config
    if getattr(text, 'activation_function', 'relu') != 'relu':
        return f'activation {text.activation_function!r} is not relu'
    for generation in _generation_configs(model):
        for name, neutral in _NEUTRAL.items():
            value = getattr(generation, name, None)
            if value not in neutral:
                return f'generation_config.{name} = {value!r} needs ' \
                    'generate()'
    return ''


def _generation_configs(model):
    """Return the generation configs, the language model's (used) first."""
    configs = [getattr(getattr(model, 'language_model', None),
                       'generation_config', None),
               getattr(model, 'generation_config', None)]
    return [c for c in configs if c is not None]


def eos_ids(model):
    """EOS token ids that end a sequence, as generate() uses them."""
    configs = _generation_configs(model)
    eos = getattr(configs[0], 'eos_token_id', None) if configs else None
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple))
                             else [eos])]


def _opt_parts(model):
    lm = model.language_model
    decoder = lm.model.decoder if hasattr(lm, 'model') else lm.decoder
    head = model.get_output_embeddings()
    if head is None:
        head = lm.get_output_embeddings()
    return decoder, head


def _fuse(linears):
    """Fuse Linear layers into one weight/bias; the modules keep views."""
    weight = torch.cat([lin.weight.data for lin in linears], dim=0)
    bias = None
    if linears[0].bias is not None:
        bias = torch.cat([lin.bias.data for lin in linears], dim=0)
    start = 0
    for lin in linears:
        rows = lin.weight.shape[0]
        lin.weight.data = weight[start:start + rows]
        if bias is not None:
            lin.bias.data = bias[start:start + rows]
        start += rows
    return weight, bias


class FastBlip2Opt:
    """Greedy BLIP-2/OPT captioning with a static KV cache."""

    def __init__(self, model, max_batch=8, max_len=128, use_cuda_graph=None):
        reason = fast_path_reason(model)
        if reason:
            raise ValueError(f'fast path unavailable: {reason}')
        self.model = model
        self.decoder, self.head = _opt_parts(model)
        text = model.config.text_config
        self.heads = text.num_attention_heads
        self.hidden = text.hidden_size
        self.head_dim = self.hidden // self.heads
        self.scaling = self.head_dim ** -0.5
        self.pre_norm = text.do_layer_norm_before
        self.eos = eos_ids(model)
        self.max_batch = max_batch
        self.max_len = min(max_len, text.max_position_embeddings)
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.layers = []
        for layer in self.decoder.layers:
            attn = layer.self_attn
            qkv_w, qkv_b = _fuse([attn.q_proj, attn.k_proj, attn.v_proj])
            self.layers.append((layer, qkv_w, qkv_b))
        shape = (len(self.layers), max_batch, self.heads, self.max_len,
                 self.head_dim)
        self.k_cache = torch.zeros(shape, device=self.device,
                                   dtype=self.dtype)
        self.v_cache = torch.zeros_like(self.k_cache)
        self._positions = torch.arange(self.max_len, device=self.device)
        if use_cuda_graph is None:
            use_cuda_graph = self.device.type == 'cuda'
        self.use_cuda_graph = use_cuda_graph
        self._graphs = {}

    # -- building blocks -------------------------------------------------

    def _attention(self, li, x, write_slice, mask):
        layer, qkv_w, qkv_b = self.layers[li]
        b, t, _ = x.shape
        qkv = F.linear(x, qkv_w, qkv_b)
        q, k, v = qkv.split(self.hidden, dim=-1)
        q = (q * self.scaling).view(b, t, self.heads, self.head_dim) \
            .transpose(1, 2)
        k = k.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k_all, v_all = write_slice(li, k, v)
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask,
                                             scale=1.0)
        out = out.transpose(1, 2).reshape(b, t, self.hidden)
        return layer.self_attn.out_proj(out)

    def _layers(self, hidden, write_slice, mask):
        for li, (layer, _, _) in enumerate(self.layers):
            residual = hidden
            if self.pre_norm:
                hidden = layer.self_attn_layer_norm(hidden)
            hidden = residual + self._attention(li, hidden, write_slice,
                                                mask)
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
        return self.head(hidden)

    def _embed_positions(self, positions):
        return self.decoder.embed_positions.weight[positions + 2]

    def _inputs(self, embeds):
        if self.decoder.project_in is not None:
            embeds = self.decoder.project_in(embeds)
        return embeds

    # -- prefill and step ------------------------------------------------

    def encode(self, pixel_values):
        """Vision encoder + Q-Former + projection: (B, queries, D)."""
        model = self.model
        image_embeds = model.vision_model(pixel_values=pixel_values,
                                          return_dict=True).last_hidden_state
        mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long,
                          device=image_embeds.device)
        query = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
        out = model.qformer(query_embeds=query,
                            encoder_hidden_states=image_embeds,
                            encoder_attention_mask=mask,
                            return_dict=True).last_hidden_state
        if out.dtype != image_embeds.dtype:
            out = out.to(image_embeds.dtype)
        return model.language_projection(out)

    def prefill(self, embeds):
        """Run the prompt (B, L, D) through the decoder; fill the cache."""
        b, length, _ = embeds.shape
        positions = self._positions[:length]
        hidden = self._inputs(embeds) + self._embed_positions(positions)
        causal = torch.ones(length, length, dtype=torch.bool,
                            device=self.device).tril()
        mask = torch.zeros(length, length, dtype=hidden.dtype,
                           device=self.device).masked_fill(
                               ~causal, float('-inf'))

        def write(li, k, v):
            self.k_cache[li, :b, :, :length] = k
            self.v_cache[li, :b, :, :length] = v
            return k, v

        return self._layers(hidden, write, mask)[:, -1]

    def _step(self, tokens, position):
        """One decode step at ``position`` (a 0-d device tensor)."""
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

        return self._layers(hidden, write, mask)[:, -1]

    def _graph_step(self, b):
        """Return the CUDA graph replaying _step for batch ``b`` (cached)."""
        if b not in self._graphs:
            tokens = torch.zeros(b, dtype=torch.long, device=self.device)
            position = torch.zeros((), dtype=torch.long, device=self.device)
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self._step(tokens, position)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                logits = self._step(tokens, position)
            self._graphs[b] = (graph, tokens, position, logits)
        return self._graphs[b]

    def warm_up(self, batch_sizes=(1,)):
        """Capture the decode step for these batch sizes (CUDA only)."""
        if not self.use_cuda_graph:
            return
        with torch.inference_mode():
            for b in batch_sizes:
                self._graph_step(min(b, self.max_batch))
        torch.cuda.synchronize(self.device)

    # -- greedy decoding -------------------------------------------------

    @torch.inference_mode()
    def generate(self, pixel_values, prompt_ids, max_new_tokens,
                 ignore_eos=False):
        """
        Greedy tokens for each image: a list of lists of new token ids.

        ``prompt_ids`` is the tokenised prompt (BOS first) shared by the
        batch.  A sequence ends at (and keeps) its EOS token, as
        ``generate()`` returns it; ``ignore_eos`` forces the full length
        (benchmarks).
        """
        b = pixel_values.shape[0]
        if b > self.max_batch:
            raise ValueError(f'batch {b} > max_batch {self.max_batch}')
        query = self.encode(pixel_values)
        prompt = torch.as_tensor(prompt_ids, device=self.device).view(1, -1)
        text = self.decoder.embed_tokens(prompt).expand(b, -1, -1)
        embeds = torch.cat([query, text.to(query.dtype)], dim=1)
        length = embeds.shape[1]
        max_new = min(max_new_tokens, self.max_len - length)
        if max_new <= 0:
            raise ValueError(f'prompt of {length} tokens leaves no room in '
                             f'max_len {self.max_len}')
        logits = self.prefill(embeds)
        eos = torch.tensor(self.eos or [-1], device=self.device)
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        out = []
        graph = self._graph_step(b) if self.use_cuda_graph else None
        position = torch.tensor(length, device=self.device)
        for i in range(max_new):
            token = logits.argmax(dim=-1)
            out.append(token)
            if not ignore_eos:
                done |= torch.isin(token, eos)
                # One host sync every few tokens keeps the GPU queue full.
                if (i % 4 == 3 or i == max_new - 1) and bool(done.all()):
                    break
            if i == max_new - 1:
                break
            if graph is not None:
                g, tokens_in, position_in, logits_out = graph
                tokens_in.copy_(token)
                position_in.fill_(length + i)
                g.replay()
                logits = logits_out
            else:
                logits = self._step(token, position)
                position = position + 1
        tokens = torch.stack(out, dim=1).tolist()
        return [_cut_at_eos(row, self.eos, ignore_eos) for row in tokens]


def _cut_at_eos(row, eos, ignore_eos):
    if ignore_eos:
        return row
    for i, token in enumerate(row):
        if token in eos:
            return row[:i + 1]
    return row


class FramePreprocessor:
    """uint8 RGB frames -> normalised pixel_values, on the model's device."""

    def __init__(self, image_processor, device, dtype):
        size = getattr(image_processor, 'size', None) or {}
        self.height = size.get('height') or size.get('shortest_edge')
        self.width = size.get('width') or size.get('shortest_edge')
        self.rescale = float(getattr(image_processor, 'rescale_factor',
                                     1 / 255))
        mean = getattr(image_processor, 'image_mean', (0.5, 0.5, 0.5))
        std = getattr(image_processor, 'image_std', (0.5, 0.5, 0.5))
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.device, self.dtype = device, dtype

    @staticmethod
    def supports(image_processor):
        """Whether the processor does plain resize/rescale/normalise."""
        size = getattr(image_processor, 'size', None) or {}
        return bool(size.get('height') and size.get('width')) and \
            getattr(image_processor, 'do_resize', True) and \
            getattr(image_processor, 'do_rescale', True) and \
            getattr(image_processor, 'do_normalize', True) and \
            int(getattr(image_processor, 'resample', 3)) == 3

    def __call__(self, frames):
        """Return (B, 3, H, W) pixel_values for H x W x 3 uint8 frames."""
        batch = []
        for frame in frames:
            flip = frame.strides[-1] < 0      # a BGR buffer seen as RGB
            if flip:
                frame = frame[..., ::-1]
            tensor = torch.from_numpy(frame).to(self.device,
                                                non_blocking=True)
            if flip:
                tensor = tensor.flip(-1)
            tensor = tensor.permute(2, 0, 1).unsqueeze(0).float()
            if tensor.shape[-2:] != (self.height, self.width):
                tensor = F.interpolate(tensor, size=(self.height, self.width),
                                       mode='bicubic', antialias=True,
                                       align_corners=False)
            batch.append(tensor)
        pixels = torch.cat(batch).round_().clamp_(0, 255)
        pixels = (pixels * self.rescale - self.mean) / self.std
        return pixels.to(self.dtype)
