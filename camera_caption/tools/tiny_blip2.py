"""
Build a tiny, randomly initialised BLIP-2 that works offline.

The model has the real BLIP-2 architecture (ViT + Q-Former + OPT decoder)
at toy sizes, with a byte-level BPE tokenizer trained locally, and is saved
with ``save_pretrained`` so that it loads through the very same
``from_pretrained`` path as a downloaded checkpoint.  It is what the tests,
the soak script and offline smoke runs use; its captions are gibberish.

    python -m camera_caption.tools.tiny_blip2 /tmp/tiny-blip2
"""

import argparse
import os

# A small corpus so that the tokenizer has real words to merge.
_CORPUS = [
    'a person walking a dog on the street',
    'a man sitting at a desk with a laptop computer',
    'a woman riding a bicycle down the road',
    'a red car parked in front of a house',
    'a robot arm picking up a box from a table',
    'two people talking in an office',
    'a cat sleeping on a couch in the living room',
    'a kitchen with a stove and a refrigerator',
    'an empty hallway with a door at the end',
    'a group of children playing in a park',
    'colored bars and a moving square on a screen',
    'question: what is happening? answer:',
]

TINY_IMAGE_SIZE = 32


def build_tokenizer(vocab_size=400, add_bos=True, corpus=None):
    """
    Train a byte-level BPE tokenizer locally and wrap it for transformers.

    With ``add_bos`` it puts ``</s>`` first, as OPT's does; without, the
    empty prompt has no ids at all.  ``corpus`` (texts) defaults to a few
    everyday captions.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ['<pad>', '</s>', '<unk>', '<image>']
    tok = Tokenizer(models.BPE(unk_token='<unk>'))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(corpus or _CORPUS) * 4, trainer=trainer)
    if add_bos:     # OPT prepends </s> (its BOS) to every text.
        from tokenizers import processors
        bos_id = tok.token_to_id('</s>')
        tok.post_processor = processors.TemplateProcessing(
            single='</s> $A', pair='</s> $A </s> $B',
            special_tokens=[('</s>', bos_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token='</s>', eos_token='</s>',
        unk_token='<unk>', pad_token='<pad>',
        padding_side='left')


def build_config(vocab_size, image_token_id, pad_id, eos_id,
                 num_query_tokens=4, initializer_range=0.02,
                 image_size=TINY_IMAGE_SIZE, patch_size=8, hidden_size=32,
                 intermediate_size=64, num_layers=2, num_heads=2,
                 dropout=None):
    """
    Return a toy-sized Blip2Config (OPT decoder).

    Every part (ViT, Q-Former, OPT) gets ``hidden_size``,
    ``intermediate_size``, ``num_layers`` and ``num_heads``; ``dropout``
    (when given) replaces the Q-Former's and OPT's default dropout.
    """
    from transformers import Blip2Config
    sizes = {'hidden_size': hidden_size,
             'intermediate_size': intermediate_size,
             'num_hidden_layers': num_layers,
             'num_attention_heads': num_heads}
    vision = dict(sizes, image_size=image_size, patch_size=patch_size)
    qformer = dict(sizes, encoder_hidden_size=hidden_size,
                   cross_attention_frequency=1, vocab_size=vocab_size)
    text = {'model_type': 'opt', 'vocab_size': vocab_size,
            'hidden_size': hidden_size, 'ffn_dim': intermediate_size,
            'num_hidden_layers': num_layers,
            'num_attention_heads': num_heads,
            'word_embed_proj_dim': hidden_size,
            'max_position_embeddings': 128, 'pad_token_id': pad_id,
            'bos_token_id': eos_id, 'eos_token_id': eos_id,
            'init_std': initializer_range}
    if dropout is not None:
        qformer.update(hidden_dropout_prob=dropout,
                       attention_probs_dropout_prob=dropout)
        text.update(dropout=dropout, attention_dropout=dropout)
    return Blip2Config(vision_config=vision, qformer_config=qformer,
                       text_config=text, num_query_tokens=num_query_tokens,
                       image_token_index=image_token_id,
                       initializer_range=initializer_range)


def build_tiny_blip2(out_dir, seed=0, weight_scale=1.0, add_bos=True):
    """
    Save a tiny random BLIP-2 (model + processor) to ``out_dir``.

    ``weight_scale`` multiplies every weight after the default init: with
    the default init a random decoder repeats one token; a wider spread
    gives varied tokens and sequences that reach EOS at different steps.
    ``add_bos=False`` gives a tokenizer that adds no BOS token.  Returns
    ``out_dir``.
    """
    import torch
    from transformers import (Blip2ForConditionalGeneration, Blip2Processor,
                              BlipImageProcessor)

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(add_bos=add_bos)
    image_token_id = tokenizer.convert_tokens_to_ids('<image>')
    config = build_config(len(tokenizer), image_token_id,
                          tokenizer.pad_token_id, tokenizer.eos_token_id)
    model = Blip2ForConditionalGeneration(config).eval()
    if weight_scale != 1.0:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if 'layer_norm' not in name and 'layernorm' not in name:
                    param.mul_(weight_scale)
    image_processor = BlipImageProcessor(
        size={'height': TINY_IMAGE_SIZE, 'width': TINY_IMAGE_SIZE})
    processor = Blip2Processor(image_processor=image_processor,
                               tokenizer=tokenizer,
                               num_query_tokens=config.num_query_tokens)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


WORD = r'^ [a-z]+$'


def words_only_head(model, tokenizer):
    """
    Make greedy decoding pick only lower-case words, never EOS; in place.

    The output head's rows of every id that does not decode to a word
    (``' person'``) are zeroed, so their logit is 0 while the best word's
    is above 0: captions are readable words instead of random bytes, and
    every caption runs to ``max_new_tokens``.  The head is untied from the
    input embedding.  The compute is unchanged.
    """
    import re

    import torch
    word = re.compile(WORD)
    lm_head = model.language_model.get_output_embeddings()
    keep = torch.zeros(lm_head.weight.shape[0], dtype=torch.bool)
    keep[[i for i in range(len(tokenizer))
          if word.match(tokenizer.decode([i]))]] = True
    with torch.no_grad():
        head = lm_head.weight.detach().clone()
        head[~keep] = 0.0
        lm_head.weight = torch.nn.Parameter(head)   # untied from the input
    model.config.text_config.tie_word_embeddings = False
    model.config.tie_word_embeddings = False
    return model


def main(argv=None):
    """Command line entry: build the tiny model into a directory."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--weight-scale', type=float, default=1.0)
    args = parser.parse_args(argv)
    print(build_tiny_blip2(args.out_dir, args.seed, args.weight_scale))


if __name__ == '__main__':
    main()
