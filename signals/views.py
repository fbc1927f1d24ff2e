"""Views of an image for modality conversion (paper Sec. 3.5): the gradient step encodes a view of the image, the
outer loss measures the whole image (the target).

- `gray`: the luminance of a colour image, on the same pixel grid (colourisation).
- `low-res`: the image box-downsampled to N x N (exact area weights), on the N x N grid of its own pixel centres
  (super-resolution).
- `mask`: a random fraction P of the pixels, or the pixels a mask file marks, on their own coordinates
  (inpainting).

The implicit decoder makes low-res and mask natural: the step's integral runs over the source's own coordinates,
scaled by (target pixels / source pixels) so that it estimates the same integral as a full image does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from implicit_gon.errors import GONError, UsageError
from implicit_gon.grids import keep_luminance, luminance, pixel_grid as grid, to_uint8

from .base import Batch

if TYPE_CHECKING:  # a type only: the image adapter imports this module to build convert signals
    from .images import ImageSignal

VIEWS = ("gray", "low-res", "mask")


@dataclass(frozen=True)
class View:
    kind: str
    """gray, low-res or mask."""
    res: int = 8
    """low-res: side of the source image."""
    frac: float = 0.25
    """mask: fraction of the pixels the source holds."""


def parse_view(spec: str) -> dict[str, Any]:
    """`gray`, `low-res:N` or `mask:P` -> the config keys it sets (data.source, data.source_res/source_frac)."""
    kind, _, arg = spec.partition(":")
    if kind not in VIEWS:
        raise UsageError(f"--source {spec!r}: unknown view (choose gray, low-res:N or mask:P)")
    if kind == "gray":
        if arg:
            raise UsageError(f"--source {spec!r}: gray takes no argument")
        return {"data.source": "gray"}
    try:
        val = int(arg) if kind == "low-res" else float(arg)
    except ValueError:
        form = "low-res:N with N a whole number of pixels" if kind == "low-res" else "mask:P with P a fraction"
        raise UsageError(f"--source {spec!r}: expected {form}") from None
    return {"data.source": kind, "data.source_res" if kind == "low-res" else "data.source_frac": val}


def view_of(data) -> View:
    """The View a DataConfig names."""
    return View(data.source, data.source_res, data.source_frac)


def check_view(view: View, res: int, channels: int) -> None:
    """Refuse views the images cannot have (the config's own ranges are checked with the config)."""
    if view.kind == "gray" and channels != 3:
        raise UsageError(f"--source gray needs colour (3-channel) images; these have {channels} channel(s)")
    if view.kind == "low-res" and not 1 <= view.res < res:
        raise UsageError(f"--source low-res:{view.res}: must be below the training resolution {res}")


def box_matrix(res: int, n: int, dtype=torch.float32) -> torch.Tensor:
    """(n, res) area weights: row i averages the part of [0, res) that coarse pixel i covers, fine pixels cut
    at its edges counted by the fraction inside (exact, where PIL's BOX counts whole pixels by their centre)."""
    edges = torch.arange(n + 1, dtype=torch.float64) * res / n  # coarse pixel edges in fine-pixel units
    lo, hi = edges[:-1, None], edges[1:, None]
    j = torch.arange(res, dtype=torch.float64)[None]
    overlap = (torch.minimum(hi, j + 1) - torch.maximum(lo, j)).clamp_min(0)  # (n, res)
    return (overlap / overlap.sum(1, keepdim=True)).to(dtype)


def downsample(values: torch.Tensor, res: int, n: int) -> torch.Tensor:
    """(B, res*res, C) -> (B, n*n, C) by exact box averaging."""
    A = box_matrix(res, n, values.dtype).to(values.device)
    img = values.reshape(len(values), res, res, -1)
    return torch.einsum("ir,brsc,js->bijc", A, img, A).reshape(len(values), n * n, -1)


def upsample_nearest(values: torch.Tensor, n: int, res: int) -> torch.Tensor:
    """(B, n*n, C) -> (B, res*res, C): each fine pixel takes the coarse pixel its centre falls in."""
    idx = ((torch.arange(res) + 0.5) * n / res).floor().long()  # (res,)
    img = values.reshape(len(values), n, n, -1)[:, idx][:, :, idx]
    return img.reshape(len(values), res * res, -1)


def random_masks(n: int, pixels: int, frac: float, seeds: list[int] | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, pixels) bool, each row with round(frac * pixels) (at least 1) True, at random: from generator, or one
    seed per row (so a held-out image gets the same mask in any batch)."""
    k = max(1, round(frac * pixels))
    if seeds is None:
        order = torch.rand(n, pixels, generator=generator).argsort(1)
    else:
        order = torch.stack([torch.randperm(pixels, generator=torch.Generator().manual_seed(s)) for s in seeds])
    mask = torch.zeros(n, pixels, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask


def masked_source(values: torch.Tensor, mask: torch.Tensor, coords: torch.Tensor):
    """The observed pixels as (coords, values, scale): coords (k, 2) when every row of mask (B, N) is the same,
    else (B, k, 2); values (B, k, C). Rows must hold equally many pixels."""
    B, N, C = values.shape
    k = int(mask[0].sum())
    scale = N / k
    if bool((mask == mask[0]).all()):
        return coords[mask[0]], values[:, mask[0]], scale
    return coords[None].expand(B, N, 2)[mask].view(B, k, 2), values[mask].view(B, k, C), scale


def load_mask(path: Path, res: int) -> torch.Tensor:
    """A mask image the size of the run's images: pixels >= 128 (white) are the ones the step sees. (res*res,) bool."""
    from PIL import Image

    from .datasets.base import open_image

    if not Path(path).is_file():
        raise GONError(f"{path}: file not found")
    a = np.asarray(open_image(path, path).convert("L"))
    if a.shape != (res, res):
        raise GONError(f"{path}: mask is {a.shape[1]}x{a.shape[0]}, the run's images are {res}x{res}")
    mask = torch.from_numpy(a.reshape(-1) >= 128)
    if not mask.any():
        raise GONError(f"{path}: mask marks no pixel (white, >= 128, is seen)")
    return mask


class ConvertSignal:
    """An image split whose batches hold a view of each image (where the step encodes) and the image itself as the
    batch's query (where the outer loss is measured)."""

    kind = "images"
    coord_dim = 2

    def __init__(self, images: ImageSignal, view: View, mask: torch.Tensor | None = None):
        check_view(view, images.res, images.out_dim)
        self.images, self.view, self.mask = images, view, mask  # mask: (res*res,) bool used for every image
        self.res, self.out_dim = images.res, images.out_dim

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx, points, generator, device, **sampling) -> Batch:
        target = self.images.full(idx, "cpu")
        coords, values, scale = self.source(target.values, generator=generator, shared=True)
        query = self.images.batch(idx, points, generator, device, **sampling)
        return Batch(coords.to(device), values.to(device), scale, query)

    def full(self, idx, device) -> Batch:
        target = self.images.full(idx, device)
        coords, values, scale = self.source(target.values.cpu(), seeds=torch.as_tensor(idx).tolist())
        return Batch(coords.to(device), values.to(device), scale, target)

    def source(self, values: torch.Tensor, generator=None, seeds=None, shared: bool = False):
        """(coords, values, scale) of the view of images values (B, res*res, C). shared: one random mask for the
        whole batch (training: it keeps the origin step's shared Jacobian; each image still sees a random mask)."""
        kind, res = self.view.kind, self.res
        if kind == "gray":
            return grid(res), luminance(values), 1.0
        if kind == "low-res":
            n = self.view.res
            return grid(n), downsample(values, res, n), res * res / (n * n)
        observed = self.observed(1, generator).expand(len(values), -1) if shared else \
            self.observed(len(values), generator, seeds)
        return masked_source(values, observed, grid(res))

    def observed(self, n: int, generator=None, seeds=None) -> torch.Tensor:
        """(n, res*res) bool: the mask view's pixels (the given mask, else random ones)."""
        if self.mask is not None:
            return self.mask[None].expand(n, -1)
        return random_masks(n, self.res * self.res, self.view.frac, seeds, generator)

    def naive(self, idx) -> torch.Tensor:
        """The source view's naive reconstruction of images idx, (B, res*res, C) on the CPU: gray replicated to
        every channel, low-res upsampled by nearest neighbour, unseen pixels filled with the seen pixels' mean."""
        x = self.images.full(idx, "cpu").values
        kind = self.view.kind
        if kind == "gray":
            return luminance(x).expand_as(x)
        if kind == "low-res":
            return upsample_nearest(downsample(x, self.res, self.view.res), self.view.res, self.res)
        seen = self.observed(len(x), seeds=torch.as_tensor(idx).tolist())[..., None]  # (B, N, 1)
        mean = (x * seen).sum(1, keepdim=True) / seen.sum(1, keepdim=True)  # (B, 1, C)
        return torch.where(seen, x, mean)

    def meta(self) -> dict[str, Any]:
        return self.images.meta()


def as_run_signal(gon, images: ImageSignal, mask: torch.Tensor | None = None):
    """images as the run encodes them: their source view for a convert run (mask: a fixed mask), else as they are."""
    if gon.cfg.gon.task != "convert":
        if mask is not None:
            raise UsageError("--mask is for convert runs with source mask (this run's task is "
                             f"{gon.cfg.gon.task})")
        return images
    view = view_of(gon.cfg.data)
    if mask is not None and view.kind != "mask":
        raise UsageError(f"--mask is for convert runs with source mask (this run's source is {view.kind})")
    return ConvertSignal(images, view, mask)


def render_conversion(gon, sig: ConvertSignal, idx, res: int) -> np.ndarray:
    """The conversion of images idx from their source view alone, at res x res: (B, res, res, C) uint8. A gray
    source's luminance, known at the training resolution, is resized bilinearly to res and kept
    (implicit_gon.grids.keep_luminance)."""
    idx = torch.as_tensor(idx)
    y = gon.decode(gon.encode_signal(sig, idx), grid(res))  # (B, res*res, C)
    if sig.view.kind == "gray":
        lum = luminance(sig.images.full(idx, "cpu").values).reshape(len(idx), 1, sig.res, sig.res)
        if res != sig.res:
            lum = torch.nn.functional.interpolate(lum, size=(res, res), mode="bilinear", align_corners=False)
        y = keep_luminance(y, lum.reshape(len(idx), res * res, 1))
    return to_uint8(y, res)


def comparison(gon, sig: ConvertSignal, n: int, res: int) -> np.ndarray:
    """Rows of n held-out images at res x res: the source's naive reconstruction, the GON's conversion from the
    source alone, and the target. (3 n, res, res, C) uint8 (training-resolution rows upsampled by nearest)."""

    idx = torch.arange(n)

    def up(v: torch.Tensor) -> np.ndarray:  # (n, N, C) at the training resolution -> (n, res, res, C) uint8
        return to_uint8(upsample_nearest(v.cpu(), sig.res, res), res)
    out = render_conversion(gon, sig, idx, res)
    return np.concatenate([up(sig.naive(idx)), out, up(sig.images.full(idx, "cpu").values)])
