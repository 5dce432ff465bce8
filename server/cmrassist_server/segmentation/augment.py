"""Batched augmentation suited to cine CMR, in torch on whole batches (cheap on a CPU).

Spatial: rotation, isotropic and anisotropic scaling, translation and a smooth elastic field, applied to the
image (bilinear) and label (nearest) with one sampling grid. Intensity: gamma, a smooth multiplicative bias
field, Gaussian noise and contrast jitter.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (each drawn per sample).

    Args:
        rotate_deg: maximum absolute rotation (short-axis views vary by tens of degrees; canonical orientation
            removes axis flips and swaps, so the whole circle is not needed and slows short training).
        scale: (min, max) zoom factor.
        elastic_px: displacement amplitude of the elastic field, in pixels of the network grid.
        gamma: (min, max) gamma exponent.
        bias: strength of the smooth multiplicative bias field.
        noise_std: maximum standard deviation of additive Gaussian noise.
        p_spatial: share of samples given a spatial transform.
        p_intensity: share of samples given intensity transforms.
    """

    rotate_deg: float = 45.0
    scale: tuple = (0.8, 1.25)
    elastic_px: float = 4.0
    gamma: tuple = (0.7, 1.5)
    bias: float = 0.3
    noise_std: float = 0.05
    p_spatial: float = 0.9
    p_intensity: float = 0.8


def augment_batch(image: torch.Tensor, label: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator):
    """Augment ``image (B,C,H,W)`` in [0,1] and ``label (B,H,W)`` (long) together.

    Channel 0 is the image; further channels (a prior) move with it but keep their values.

    Returns:
        the augmented image and label, same shapes and dtypes.
    """
    b, _, h, w = image.shape
    g = generator
    rnd = lambda *s: torch.rand(*s, generator=g)  # noqa: E731

    on = (rnd(b) < cfg.p_spatial).float()
    angle = (rnd(b) * 2 - 1) * math.radians(cfg.rotate_deg) * on
    lo, hi = cfg.scale
    zoom = torch.exp(math.log(lo) + rnd(b) * (math.log(hi) - math.log(lo)))
    zoom = 1 + (zoom - 1) * on
    aniso = 1 + (rnd(b) * 2 - 1) * 0.1 * on
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos / (zoom * aniso), -sin / zoom
    theta[:, 1, 0], theta[:, 1, 1] = sin / (zoom * aniso), cos / zoom
    theta[:, :, 2] = (rnd(b, 2) * 2 - 1) * 0.08 * on[:, None]
    grid = F.affine_grid(theta, (b, 1, h, w), align_corners=False)
    if cfg.elastic_px > 0:
        coarse = torch.randn(b, 2, 5, 5, generator=g) * (cfg.elastic_px * 2 / max(h, w)) * on[:, None, None, None]
        grid = grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    image = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    label = F.grid_sample(label[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    label = label[:, 0].long()

    image, prior = image[:, :1], image[:, 1:]
    on_i = (rnd(b) < cfg.p_intensity).float()[:, None, None, None]
    glo, ghi = cfg.gamma
    gamma = torch.exp(math.log(glo) + rnd(b) * (math.log(ghi) - math.log(glo)))[:, None, None, None]
    out = image.clamp(0, 1) ** (1 + (gamma - 1) * on_i)
    coarse_bias = torch.randn(b, 1, 3, 3, generator=g) * cfg.bias
    bias = torch.exp(F.interpolate(coarse_bias, size=(h, w), mode="bicubic", align_corners=True))
    out = out * (1 + (bias - 1) * on_i)
    contrast = 1 + (rnd(b) * 2 - 1)[:, None, None, None] * 0.15 * on_i
    out = out * contrast + torch.randn(out.shape, generator=g) * (rnd(b) * cfg.noise_std)[:, None, None, None] * on_i
    return torch.cat([out, prior], dim=1), label
