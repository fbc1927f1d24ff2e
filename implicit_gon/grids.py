"""What the engine and the image adapter share about pixels: coordinate grids (pixel centres in [-1, 1]^2), their
uint8 pictures, and luminance (the gray view of colour images, which modality conversion encodes and keeps)."""
from __future__ import annotations

import numpy as np
from .lazy import lazy_import

torch = lazy_import("torch")  # loaded on first use (implicit_gon/lazy.py)


def pixel_grid(res: int, device=None, dtype=None) -> torch.Tensor:
    """Pixel centres of a res x res grid in [-1, 1]^2, row-major: (res*res, 2); float32 unless dtype says."""
    t = (torch.arange(res, device=device, dtype=dtype or torch.float32) + 0.5) / res * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([yy, xx], -1).reshape(-1, 2)


def to_uint8(values: torch.Tensor, res: int) -> np.ndarray:
    """(B, res*res, C) floats in [0, 1] -> (B, res, res, C) uint8."""
    v = values.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return v.reshape(v.shape[0], res, res, v.shape[-1])


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def luminance(values: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 1)."""
    return values @ values.new_tensor(LUMA)[:, None]


def keep_luminance(y: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
    """F's colours y (..., 3) shifted, equally in every channel, to luminance lum (..., 1): the luma weights sum
    to 1, so luminance(result) == lum exactly, and the chroma is F's."""
    return y + (lum - luminance(y))
