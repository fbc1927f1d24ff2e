"""Coordinate grids the engine and the adapters share: pixel centres in [-1, 1]^2 and their uint8 pictures."""
from __future__ import annotations

import numpy as np
import torch


def pixel_grid(res: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel centres of a res x res grid in [-1, 1]^2, row-major: (res*res, 2)."""
    t = (torch.arange(res, device=device, dtype=dtype) + 0.5) / res * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([yy, xx], -1).reshape(-1, 2)


def to_uint8(values: torch.Tensor, res: int) -> np.ndarray:
    """(B, res*res, C) floats in [0, 1] -> (B, res, res, C) uint8."""
    v = values.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return v.reshape(v.shape[0], res, res, v.shape[-1])
