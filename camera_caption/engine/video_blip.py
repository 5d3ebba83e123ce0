"""
Clips through BLIP-2: VideoBLIP's encoding, shared by both engines.

No ROS import (torch on use).  A still is ``pixel_values`` of shape
``(B, 3, H, W)``; a clip batch is ``(B, N, 3, H, W)``.  As VideoBLIP
(kpyu/video-blip-*) does it, every frame goes through the vision encoder
(one batched call of ``B * N`` images), the patch tokens of a clip's N
frames are concatenated along the sequence, ``(B, N * P, D)``, and the
Q-Former's usual query tokens attend to all of them; its output, projected,
takes the place of the image tokens in the language model's input.  A
VideoBLIP checkpoint is a BLIP-2 checkpoint (same config, same weights'
names), so it loads as ``Blip2ForConditionalGeneration``; a plain BLIP-2
takes clips zero-shot the same way.
"""

import torch


def is_blip2_family(model):
    """Whether ``model`` has BLIP-2's vision encoder, Q-Former and queries."""
    return all(hasattr(model, name) for name in (
        'vision_model', 'qformer', 'query_tokens', 'language_projection'))


def is_video_checkpoint(config):
    """Whether a BLIP-2 config was saved by VideoBLIP (its architectures)."""
    return any('video' in str(name).lower()
               for name in getattr(config, 'architectures', None) or ())


def query_embeds(model, pixel_values):
    """
    Vision encoder + Q-Former + projection: ``(B, queries, D)``.

    ``pixel_values`` is ``(B, 3, H, W)`` (stills, exactly as HF's BLIP-2)
    or ``(B, N, 3, H, W)`` (clips, VideoBLIP's way).  The result is in the
    projection's dtype.
    """
    clip = pixel_values.dim() == 5
    if clip:
        b, n = pixel_values.shape[:2]
        pixel_values = pixel_values.flatten(0, 1)
    image_embeds = model.vision_model(pixel_values=pixel_values,
                                      return_dict=True).last_hidden_state
    if clip:
        image_embeds = image_embeds.reshape(b, n * image_embeds.shape[1],
                                            image_embeds.shape[-1])
    mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long,
                      device=image_embeds.device)
    query = model.query_tokens.expand(image_embeds.shape[0], -1, -1)
    out = model.qformer(query_embeds=query,
                        encoder_hidden_states=image_embeds,
                        encoder_attention_mask=mask,
                        return_dict=True).last_hidden_state
    # As HF: a float32 Q-Former's output goes back to the vision dtype.
    if out.dtype != image_embeds.dtype:
        out = out.to(image_embeds.dtype)
    return model.language_projection(out)


def generate_clips(model, pixel_values, input_ids, attention_mask,
                   **generate_kwargs):
    """
    ``generate()`` on clips, as BLIP-2's own generate() does on stills.

    ``input_ids`` come from the processor for one still each (the image
    tokens first where this transformers puts them, then the prompt); the
    clip's query outputs replace the image tokens, or go first where the
    processor put none (older transformers).  Returns the language model's
    ``generate()`` output (decoder-only: the input ids first).
    """
    queries = query_embeds(model, pixel_values)
    embed = model.get_input_embeddings()
    image_token = getattr(model.config, 'image_token_id', None)
    if image_token is None:
        image_token = getattr(model.config, 'image_token_index', None)
    count = queries.shape[1]
    marked = (input_ids == image_token) if image_token is not None else None
    if marked is not None and bool((marked.sum(-1) == count).all()):
        inputs_embeds = embed(input_ids)
        inputs_embeds = inputs_embeds.masked_scatter(
            marked.unsqueeze(-1).to(inputs_embeds.device),
            queries.to(inputs_embeds.device, inputs_embeds.dtype))
    else:
        inputs_embeds = torch.cat([queries.to(embed.weight.dtype),
                                   embed(input_ids)], dim=1)
        ones = torch.ones(queries.shape[:2], dtype=attention_mask.dtype,
                          device=attention_mask.device)
        attention_mask = torch.cat([ones, attention_mask], dim=1)
        input_ids = None
    lm = model.language_model
    inputs = {'inputs_embeds': inputs_embeds,
              'attention_mask': attention_mask}
    if input_ids is not None and not lm.config.is_encoder_decoder:
        inputs['input_ids'] = input_ids
    return lm.generate(**inputs, **generate_kwargs)
