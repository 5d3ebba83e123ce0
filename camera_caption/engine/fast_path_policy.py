"""
Which models the fast path can caption exactly as ``generate()`` would.

No ROS import.  :func:`fast_path_reason` says why a loaded model cannot take
the static-cache greedy path (another decoder than OPT, sampling, beam
search, logits processors in its generation config), or '' when it can;
:func:`eos_ids` lists the tokens that end a caption.
"""


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
