"""Three-scale encoder-decoder denoiser after Liu et al. (IJCAI 2018), noise-level conditional.

Structure (scale 1 = full resolution, scale 3 = quarter resolution):

* scale 1: a 3x3 convolution of the image and its sigma map (the feature-encoding module of
  this scale has no residual block, as in the authors' network);
* scales 2 and 3: a stride-2 3x3 convolution followed by residual bottleneck blocks;
* decoding: a 4x4 stride-2 transposed convolution up, concatenation with the encoder
  features of that scale, a 3x3 fusion convolution and residual bottleneck blocks;
* reconstruction: a 3x3 convolution of the fused scale-1 features to the image channels,
  added to the noisy input (the long skip: the network predicts the negative noise).

Unlike the original (one model per sigma, valid padding, batch norm) the network takes the
noise level as an extra input channel (as FFDNet and DRUNet do) so one model covers sigma
0..75, uses zero 'same' padding, and has no normalisation layers, which keeps inference
independent of batch composition and of tiling.  Input height and width are padded by
reflection to a multiple of 4 inside ``forward``, so any size works.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import pad_to_multiple
from ..registry import register


@dataclass(frozen=True)
class UNet3Config:
    """Architecture options; stored in checkpoints and the weights manifest."""

    channels: int = 3  # image channels: 1 (gray) or 3 (colour)
    widths: tuple[int, int, int] = (64, 128, 192)  # feature channels at scales 1, 2, 3
    encoder_blocks: tuple[int, int] = (2, 4)  # residual bottleneck blocks at scales 2, 3
    decoder_blocks: int = 1  # residual bottleneck blocks after fusion at scale 2
    up_width: int = 32  # channels of the 4x4 transposed convolution to full resolution

    @classmethod
    def from_dict(cls, options: dict) -> "UNet3Config":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    def to_dict(self) -> dict:
        return asdict(self)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand, added to the input, ReLU after the sum."""

    def __init__(self, width: int) -> None:
        super().__init__()
        mid = width // 2
        self.reduce = nn.Conv2d(width, mid, 1)
        self.spatial = nn.Conv2d(mid, mid, 3, padding=1)
        self.expand = nn.Conv2d(mid, width, 1)
        # Each block starts as the identity so a deep stack trains without normalisation.
        nn.init.zeros_(self.expand.weight)
        nn.init.zeros_(self.expand.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.reduce(x), inplace=True)
        y = F.relu(self.spatial(y), inplace=True)
        return F.relu(self.expand(y).add_(x), inplace=True)


def _stack(width: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[Bottleneck(width) for _ in range(count)])


@register("unet3", UNet3Config)
class UNet3(nn.Module):
    """Noise-conditional three-scale denoiser.

    ``forward(x, sigma)``: ``x`` is ``[B, C, H, W]`` in [0, 1] (values outside are allowed,
    noisy images are not clipped); ``sigma`` is the noise standard deviation on the [0, 1]
    scale, a float, a ``[B]`` tensor, or a ``[B, 1, H, W]`` map for spatially varying noise.
    Returns the denoised image, same shape as ``x``.
    """

    image_denoiser = True  # dncli denoise and deblur may run it

    # Two stride-2 stages: outputs are shift-equivariant only for shifts by multiples of 4.
    size_multiple = 4

    def __init__(self, config: UNet3Config = UNet3Config()) -> None:
        super().__init__()
        self.config = config
        w1, w2, w3 = config.widths
        c = config.channels
        self.head = nn.Conv2d(c + 1, w1, 3, padding=1)
        self.down2 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.enc2 = _stack(w2, config.encoder_blocks[0])
        self.down3 = nn.Conv2d(w2, w3, 3, stride=2, padding=1)
        self.enc3 = _stack(w3, config.encoder_blocks[1])
        self.up3 = nn.ConvTranspose2d(w3, w2 // 2, 4, stride=2, padding=1)
        self.fuse2 = nn.Conv2d(w2 + w2 // 2, w2, 3, padding=1)
        self.dec2 = _stack(w2, config.decoder_blocks)
        self.up2 = nn.ConvTranspose2d(w2, config.up_width, 4, stride=2, padding=1)
        self.tail = nn.Conv2d(w1 + config.up_width, c, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that can influence an output pixel (an upper bound)."""
        c = self.config
        # A 3x3 layer adds its stride; a 4x4 stride-2 transposed layer adds one step of the
        # coarser grid; 3 more cover the stride-4 phase of the reflection padding.
        head_and_tail, strided_3x3, transposed = 2, 1 + 2 + 2, 4 + 2
        blocks = 2 * c.encoder_blocks[0] + 4 * c.encoder_blocks[1] + 2 * c.decoder_blocks
        return head_and_tail + strided_3x3 + transposed + blocks + 3

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        noise_map = pad_to_multiple(sigma_map(sigma, x), self.size_multiple, "replicate")
        x = pad_to_multiple(x, self.size_multiple)
        f1 = self.head(torch.cat([x, noise_map], dim=1))
        f2 = self.enc2(F.relu(self.down2(F.relu(f1)), inplace=True))
        f3 = self.enc3(F.relu(self.down3(f2), inplace=True))
        d2 = F.relu(conv_of_concat(self.fuse2, f2, F.relu(self.up3(f3), inplace=True)), inplace=True)
        d2 = self.dec2(d2)
        out = x + conv_of_concat(self.tail, f1, F.relu(self.up2(d2), inplace=True))
        return out[:, :, :h, :w]


def conv_of_concat(conv: nn.Conv2d, *parts: torch.Tensor) -> torch.Tensor:
    """``conv(torch.cat(parts, dim=1))`` as a sum of one convolution per part.

    Why: on the CPU the concatenated copy of full-resolution features costs as much as a small
    convolution layer and is the largest activation of the pass, and it is never needed, since
    a convolution is linear in its input channels.  With the in-place activations this made the
    shipped unet3 3-6 % faster on 2 cores and cut the peak memory of a 4-megapixel image by a
    fifth (benchmarks/denoise.py); the result equals the concatenated form up to float rounding.
    """
    out, start = None, 0
    for part in parts:
        end = start + part.shape[1]
        term = F.conv2d(part, conv.weight[:, start:end], conv.bias if out is None else None,
                        conv.stride, conv.padding, conv.dilation)
        out = term if out is None else out.add_(term)
        start = end
    return out


def sigma_map(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a float, ``[B]`` or ``[B, 1, H, W]`` noise level to a ``[B, 1, H, W]`` map."""
    b, _, h, w = x.shape
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.dim() == 4:
        return s.expand(b, 1, h, w)
    return s.reshape(-1, 1, 1, 1).expand(b, 1, h, w)
