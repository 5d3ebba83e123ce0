"""
Frames to ``pixel_values`` with torch, on the model's device.

No ROS import.  :class:`FramePreprocessor` does what the BLIP image
processor does (bicubic resize, rescale, normalise) without PIL, on uint8
RGB frames as the frame converters return them.  A converter may return a
BGR buffer as an RGB *view* (the channel axis reversed, no copy); such a
view is copied to the device as it lies and reversed there.
"""

import torch
import torch.nn.functional as F


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
            reversed_view = frame.strides[-1] < 0   # see the module doc
            if reversed_view:
                frame = frame[..., ::-1]
            tensor = torch.from_numpy(frame).to(self.device,
                                                non_blocking=True)
            if reversed_view:
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
