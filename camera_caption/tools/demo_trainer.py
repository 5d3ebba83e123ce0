"""
The demo model's training mechanics: initial filters, averaged weights, the trainer.

What :func:`camera_caption.tools.demo_training.train_demo_model` steps
with: edge filters to start the ViT from, an exponential average of the
weights, and :class:`_Trainer` (pixels, token ids, the caption loss, greedy
decoding on training tensors).  Their code is part of ``recipe_hash()``.
"""


def _init_edge_filters(model, scale, share):
    """
    Start the ViT's patch embedding as oriented edge detectors.

    A ``share`` of the channels see a soft step at its own orientation
    and one of 4 offsets, the same on all three colour channels; the rest
    keep their random colour filters.  A ViT this small, trained from
    random patch filters, takes many minutes to tell a circle from a
    square; from edge filters, seconds.
    """
    import math
    import torch
    weight = model.vision_model.embeddings.patch_embedding.weight
    channels, _, p, _ = weight.shape
    edges = int(channels * share)
    ramp = torch.linspace(-1, 1, p)
    yy, xx = torch.meshgrid(ramp, ramp, indexing='ij')
    with torch.no_grad():
        for k in range(edges):
            angle = 2 * math.pi * k / edges
            offset = ((k % 4) - 1.5) / 3
            step = torch.tanh(3 * (math.cos(angle) * xx
                                   + math.sin(angle) * yy - offset))
            weight[k] = step * scale / (p * p)
        # Residual branches start at zero: the encoder starts as a bag of
        # edge features, which already separates the shapes linearly.
        for layer in model.vision_model.encoder.layers:
            layer.self_attn.projection.weight.zero_()
            layer.mlp.fc2.weight.zero_()


class _Average:
    """A running average of parameters, to check and keep instead."""

    def __init__(self, params, decay):
        self.params = list(params)
        self.decay = decay
        self.values = [p.detach().clone() for p in self.params]

    def update(self):
        """Move the average towards the parameters (after a step)."""
        import torch
        with torch.no_grad():
            for p, a in zip(self.params, self.values):
                a.lerp_(p, 1 - self.decay)

    def swap(self):
        """Exchange parameters and average (twice: back as before)."""
        import torch
        with torch.no_grad():
            for p, a in zip(self.params, self.values):
                held = p.detach().clone()
                p.copy_(a)
                a.copy_(held)


class _Trainer:
    """The model, its tokenised captions and a version-proof forward."""

    def __init__(self, model, tokenizer, image_processor):
        import torch
        self.model = model
        self.tokenizer = tokenizer
        lm = model.language_model
        self.decoder = lm.model.decoder if hasattr(lm, 'model') \
            else lm.decoder
        self.head = model.get_output_embeddings()
        if self.head is None:
            self.head = lm.get_output_embeddings()
        mean = image_processor.image_mean
        std = image_processor.image_std
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.eos = tokenizer.eos_token_id

    def pixels(self, images, noise=0.0, generator=None):
        """uint8 images -> normalised pixel_values (+ Gaussian noise)."""
        import torch
        x = images.float() / 255.0
        if noise:
            x = x + noise * torch.rand(len(x), 1, 1, 1, generator=generator
                                       ) * torch.randn(x.shape,
                                                       generator=generator)
            x = x.clamp(0, 1)
        return (x - self.mean) / self.std

    def ids(self, captions):
        """Tokenise equal-length captions: BOS, caption, EOS."""
        import torch
        rows = [self.tokenizer(c)['input_ids'] + [self.eos]
                for c in captions]
        if len({len(r) for r in rows}) != 1:
            raise ValueError('demo captions must tokenise to equal lengths')
        return torch.tensor(rows)

    def features(self, pixel_values):
        """Mean ViT patch feature of each image."""
        return self.model.vision_model(
            pixel_values=pixel_values,
            return_dict=True).last_hidden_state[:, 1:].mean(dim=1)

    def image_embeds(self, pixel_values):
        """Return the ViT's output (B, patches + 1, hidden)."""
        return self.model.vision_model(
            pixel_values=pixel_values, return_dict=True).last_hidden_state

    def logits(self, image, ids):
        """Return decoder logits over [query tokens, ids], as generate()."""
        import torch
        model = self.model
        mask = torch.ones(image.shape[:-1], dtype=torch.long)
        query = model.query_tokens.expand(image.shape[0], -1, -1)
        query = model.qformer(query_embeds=query,
                              encoder_hidden_states=image,
                              encoder_attention_mask=mask,
                              return_dict=True).last_hidden_state
        embeds = torch.cat([model.language_projection(query),
                            self.decoder.embed_tokens(ids)], dim=1)
        hidden = self.decoder(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
            return_dict=True).last_hidden_state
        return self.head(hidden)

    def caption_loss(self, image, ids):
        """Cross-entropy of every caption token after BOS."""
        import torch.nn.functional as F
        queries = self.model.config.num_query_tokens
        logits = self.logits(image, ids)[:, queries:-1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               ids[:, 1:].reshape(-1))

    def greedy(self, pixel_values, length):
        """Greedy captions (full recompute; short sequences only)."""
        import torch
        ids = torch.full((len(pixel_values), 1),
                         self.tokenizer.bos_token_id, dtype=torch.long)
        with torch.no_grad():
            image = self.image_embeds(pixel_values)
            for _ in range(length):
                token = self.logits(image, ids)[:, -1].argmax(-1)
                ids = torch.cat([ids, token[:, None]], dim=1)
        return [t.strip() for t in self.tokenizer.batch_decode(
            ids, skip_special_tokens=True)]
