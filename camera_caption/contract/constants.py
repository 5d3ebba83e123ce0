"""Names the parameters choose from, shared by the contract and the code."""

DEFAULT_MODEL = 'Salesforce/blip2-opt-2.7b'

# dtype parameter value (and its aliases) -> torch dtype name.
DTYPES = {
    'float16': 'float16', 'fp16': 'float16', 'half': 'float16',
    'bfloat16': 'bfloat16', 'bf16': 'bfloat16',
    'float32': 'float32', 'fp32': 'float32', 'float': 'float32',
}
DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
# quantize parameter: the language model's linear weights on a CPU.
QUANTIZE_CHOICES = ('none', 'int8')

# backend parameter value -> 'module:class' of its CaptionBackend.
BACKENDS = {
    'local': 'camera_caption.engine.local_backend:LocalBackend',
    'openai': 'camera_caption.engine.openai_backend:OpenAIBackend',
}

# caption_logger transcript formats.
TRANSCRIPT_FORMATS = ('jsonl', 'srt', 'vtt')

# What the camera publishes (the captioner reads many more, see frames).
CAMERA_ENCODINGS = ('rgb8', 'bgr8')
RELIABILITY_CHOICES = ('best_effort', 'reliable')
