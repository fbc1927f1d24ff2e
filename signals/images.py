"""Image adapter: pixel-centre coordinates in [-1, 1]^2 (row, column), 1 or 3 channels, values in [0, 1].

Images are held as uint8 (n, H, W, C), possibly a read-only memory map of the decoded cache, and converted
to float only for the samples of a batch, so datasets larger than RAM train without loading them whole.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Batch, draw_subset


def grid(res: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel centres of a res x res grid in [-1, 1]^2, row-major: (res*res, 2)."""
    t = (torch.arange(res, device=device, dtype=dtype) + 0.5) / res * 2 - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([yy, xx], -1).reshape(-1, 2)


def to_uint8(values: torch.Tensor, res: int) -> np.ndarray:
    """(B, res*res, C) floats in [0, 1] -> (B, res, res, C) uint8."""
    v = values.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return v.reshape(v.shape[0], res, res, v.shape[-1])


class ImageSignal:
    """A split of an image dataset as a Signal."""

    kind = "images"
    coord_dim = 2

    def __init__(self, images: np.ndarray, name: str = "images", labels: np.ndarray | None = None,
                 classes: list[str] | None = None):
        if images.ndim != 4 or images.shape[1] != images.shape[2] or images.shape[3] not in (1, 2, 3):
            raise ValueError(f"{name}: expected square images as (n, H, W, C) with C in 1..3, got {images.shape}")
        self.images, self.name = images, name
        self.res, self.out_dim = images.shape[1], images.shape[3]
        self._grid = grid(self.res)
        self.labels, self.classes = labels, classes  # (n,) int64 class indices and their names, or None
        self.encode_full = False  # True: the step always encodes every pixel, `points` subsamples the outer loss

    def __len__(self) -> int:
        return len(self.images)

    def _values(self, idx: torch.Tensor) -> torch.Tensor:
        rows = idx.numpy()
        x = torch.from_numpy(np.ascontiguousarray(self.images[rows]))  # (B, H, W, C) uint8
        return x.reshape(len(rows), -1, self.out_dim).float().div_(255)  # (B, N, C)

    def batch(self, idx, points, generator, device) -> Batch:
        sub, scale = draw_subset(self.res * self.res, points, generator)
        values, coords = self._values(idx), self._grid
        labels = self._labels(idx, device)
        if sub is not None and self.encode_full:  # latents as at test time; the outer loss on the subset
            query = Batch(coords[sub].to(device), values[:, sub].to(device), scale)
            return Batch(coords.to(device), values.to(device), 1.0, query, labels)
        if sub is not None:  # one subset shared by the batch keeps the origin step's shared Jacobian
            values, coords = values[:, sub], coords[sub]
        return Batch(coords.to(device), values.to(device), scale, labels=labels)

    def full(self, idx, device) -> Batch:
        return Batch(self._grid.to(device), self._values(idx).to(device), 1.0, labels=self._labels(idx, device))

    def _labels(self, idx: torch.Tensor, device) -> torch.Tensor | None:
        if self.labels is None:
            return None
        return torch.from_numpy(np.asarray(self.labels)[torch.as_tensor(idx).numpy()]).to(device)  # (B,)

    def meta(self) -> dict[str, Any]:
        meta = {"signal": "images", "res": self.res, "channels": self.out_dim, "name": self.name}
        return meta if self.classes is None else {**meta, "classes": list(self.classes)}


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(n, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) picture. Two-channel images (SmallNORB
    stereo pairs) are shown as their two channels side by side."""
    if images.shape[-1] == 2:
        images = np.concatenate([images[..., :1], images[..., 1:]], axis=2)
    n, h, w, c = images.shape
    cols = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = im
    return out


def save_png(images: np.ndarray, path, nrow: int | None = None) -> None:
    """Write one image (n == 1, as is) or a grid, atomically."""
    from PIL import Image

    from implicit_gon.fsio import atomic_path

    pic = images[0] if len(images) == 1 and images.shape[-1] != 2 else make_grid(images, nrow)
    pic = pic[..., 0] if pic.shape[-1] == 1 else pic
    with atomic_path(path) as tmp:
        Image.fromarray(pic).save(tmp, format="PNG")


def render(gon, z: torch.Tensor, res: int) -> np.ndarray:
    """Decode latents on a res x res grid (super-resolution above the training resolution): (B, res, res, C)."""
    return to_uint8(gon.decode(z, grid(res)), res)
