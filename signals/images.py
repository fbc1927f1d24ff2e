"""Image adapter: pixel-centre coordinates in [-1, 1]^2 (row, column), 1 or 3 channels, values in [0, 1].

Images are held as uint8 (n, H, W, C), possibly a read-only memory map of the decoded cache, and converted
to float only for the samples of a batch, so datasets larger than RAM train without loading them whole.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from implicit_gon.lazy import lazy_import

torch = lazy_import("torch")  # loaded on first use: `fit KIND -h` imports this module, not torch

from implicit_gon.grids import pixel_grid as grid, to_uint8

from .base import Batch, draw_subset, to_device


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

    def batch(self, idx, points, generator, device, stratified: bool = False) -> Batch:
        """A Monte Carlo subset of pixels shared by the batch: uniform, or one per block (stratified)."""
        if stratified:
            sub, scale = stratified_subset(self.res, points, generator)
        else:
            sub, scale = draw_subset(self.res * self.res, points, generator)
        values, coords = self._values(idx), self._grid
        labels = self._labels(idx, device)
        index = torch.as_tensor(idx).to(device)
        if sub is not None and self.encode_full:  # latents as at test time; the outer loss on the subset
            query = Batch(coords[sub].to(device), values[:, sub].to(device), scale)
            return Batch(coords.to(device), values.to(device), 1.0, query, labels, index)
        if sub is not None:  # one subset shared by the batch keeps the origin step's shared Jacobian
            values, coords = values[:, sub], coords[sub]
        return Batch(coords.to(device), to_device(values, device), scale, labels=labels, index=index)

    def full(self, idx, device) -> Batch:
        return Batch(self._grid.to(device), to_device(self._values(idx), device), 1.0,
                     labels=self._labels(idx, device), index=torch.as_tensor(idx).to(device))

    def _labels(self, idx: torch.Tensor, device) -> torch.Tensor | None:
        if self.labels is None:
            return None
        return torch.from_numpy(np.asarray(self.labels)[torch.as_tensor(idx).numpy()]).to(device)  # (B,)

    def meta(self) -> dict[str, Any]:
        meta = {"signal": "images", "res": self.res, "channels": self.out_dim, "name": self.name,
                "mean_brightness": round(mean_brightness(self.images), 4)}
        return meta if self.classes is None else {**meta, "classes": list(self.classes)}


def mean_brightness(images: np.ndarray, most: int = 1000) -> float:
    """Mean pixel value in [0, 1] of a spread sample of at most `most` images (n, H, W, C) uint8: a few ms even for
    a memory-mapped dataset larger than RAM. render --input compares an input's with the training set's."""
    step = max(1, len(images) // most)
    return float(np.asarray(images[::step][:most], np.float32).mean()) / 255 if len(images) else 0.0


def image_signal(data, split: str = "train", res: int | None = None, channels: int | None = None,
                 progress: bool = True, notes: bool = True, labels: bool = False) -> ImageSignal:
    """An ImageSignal for one split of the dataset a DataConfig names (notes: print the dataset's notes, such as
    a test-only split, once per process; labels: with its class labels)."""
    from .datasets import load_images, load_labels

    images = load_images(data.dataset, split, data.data_dir, res or data.res, channels or data.channels,
                         data.cache_dir, data.download, data.camera, progress, notes=notes)
    lab, classes = None, None
    if labels:
        lab, classes = load_labels(data.dataset, split, data.data_dir, data.cache_dir, data.camera)
    if data.train_limit and split == "train":
        images = images[:data.train_limit]
        lab = None if lab is None else lab[:data.train_limit]
    return ImageSignal(images, f"{data.dataset}/{split}", lab, classes)


def task_signal(data, task: str, split: str = "train", res: int | None = None, channels: int | None = None,
                progress: bool = True, notes: bool = True):
    """The image signal a task trains and evaluates on: with labels for classify and joint, the view of each
    image (data.source) as where the step encodes for convert, the plain images otherwise."""
    sig = image_signal(data, split, res, channels, progress, notes, labels=task in ("classify", "joint"))
    if task in ("classify", "joint"):
        sig.encode_full = True  # the classifier sees test-time latents in training: `points` thins the outer loss
    if task != "convert":
        return sig
    from .views import ConvertSignal, view_of
    return ConvertSignal(sig, view_of(data))


def stratified_subset(res: int, points: float, generator: torch.Generator) -> tuple[torch.Tensor | None, float]:
    """One pixel drawn uniformly in each b x b block of the res x res grid, b = 1 / sqrt(points), and the scale b^2.
    Every pixel is drawn with probability 1 / b^2, so the scaled sum is unbiased, as a uniform subset's is; but no
    two points fall in one block, so the estimate varies less from draw to draw (neighbouring pixels are alike).
    Where b does not divide res, the last row and column of blocks overhang the grid and a draw landing outside is
    dropped: each pixel keeps probability 1 / b^2, and the count varies a little from step to step."""
    from implicit_gon.config import strata_block
    from implicit_gon.errors import GONError
    b = strata_block(points)
    if b is None or b > res:
        raise GONError(f"train.points = {points:g}: stratified sampling needs 1 / b^2 for a whole b no larger than "
                       f"the resolution {res}")
    if b == 1:
        return None, 1.0
    m = -(-res // b)  # blocks per side, the last overhanging the grid where b does not divide res
    oy, ox = torch.randint(0, b, (2, m, m), generator=generator)  # each block's offset
    by, bx = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    y, x = by * b + oy, bx * b + ox  # (m, m) each
    if res % b:
        inside = (y < res) & (x < res)
        y, x = y[inside], x[inside]
    return (y * res + x).flatten(), float(b * b)  # (<= m * m,) raster indices


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(n, H, W, C) uint8 -> one grid picture (implicit_gon.media.make_grid)."""
    from implicit_gon.media import make_grid as grid_of
    return grid_of(images, nrow, pad)


def save_png(images: np.ndarray, path, nrow: int | None = None) -> None:
    """Write one image (n == 1, as is) or a grid, atomically, in the format the extension names (PNG, JPEG,
    WebP, GIF): implicit_gon.media.save_grid."""
    from implicit_gon.media import save_grid
    save_grid(images, path, nrow)


def read_images(paths, res: int, channels: int) -> np.ndarray:
    """Image files as a run sees them: centre-cropped to a square, resized to res, converted to channels:
    (n, res, res, channels) uint8. A missing or unreadable file is a one-line DataError naming it."""
    from pathlib import Path

    from implicit_gon.errors import DataError
    from implicit_gon.fsio import input_file

    from .datasets import resize_square
    from .datasets.base import open_image

    mode = "L" if channels == 1 else "RGB"
    out = []
    for p in map(Path, paths):
        input_file(p, "image file")
        a = np.asarray(open_image(p, p).convert(mode))
        out.append(resize_square(a[..., None] if a.ndim == 2 else a, res, channels))
    if not out:
        raise DataError("no image files given")
    return np.stack(out)


def as_uint8_images(x, res: int, channels: int) -> np.ndarray:
    """Images given as an array or tensor (B, H, W, C) or (B, H, W), uint8 or floats in [0, 1], brought to the
    run's resolution and channels: (B, res, res, channels) uint8."""
    from implicit_gon.errors import GONError

    from .datasets import resize_square

    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a[..., None] if a.ndim == 3 else a
    if a.ndim != 4 or a.shape[-1] not in (1, 2, 3):
        raise GONError(f"images must be (B, H, W, C) with C in 1..3 or (B, H, W), got shape {a.shape}")
    if a.size == 0:
        raise GONError(f"images of shape {a.shape}: no pixels (every dimension must be at least 1)")
    _check_array_size(a.shape, res, channels)
    a = _to_uint8(a)
    if a.shape[1:] == (res, res, channels):
        return a
    return np.stack([resize_square(im, res, channels) for im in a])


def _check_array_size(shape: tuple, res: int, channels: int) -> None:
    """Images given as an array (B, H, W, C), before they are converted and resized: each at most the pixels an
    image file may have, and the working copies (floats, then the resized uint8 images) within the memory budget.
    A broadcast view of 2 x 100,000^2 pixels takes no memory itself, and resizing it asked for 9 GB."""
    from implicit_gon import limits

    from .datasets.pixels import check_pixels
    b, h, w, c = shape
    check_pixels(f"images of shape {tuple(shape)}, each", w, h)  # an image file's limit
    limits.check(f"images of shape {tuple(shape)}", b * (h * w * c * (limits.F32 + 1) + res * res * channels),
                 "give fewer images")


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Pixels by their dtype's range: uint8 as they are, uint16 / 65535, floats in [0, 1] (anything outside is
    refused, not clipped: a 0..255 float image would turn white); other integer types have no defined range."""
    from implicit_gon.errors import GONError
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) * (255 / 65535)).round().astype(np.uint8)
    if a.dtype.kind != "f":
        raise GONError(f"images of dtype {a.dtype}: give uint8 (0..255), uint16 (0..65535) or floats in [0, 1]")
    if not np.isfinite(a).all():
        raise GONError("images hold NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise GONError(f"float images must lie in [0, 1] (these span {lo:.4g}..{hi:.4g}); for 0..255 values "
                       f"pass uint8")
    return (a * 255).round().astype(np.uint8)


def render(gon, z: torch.Tensor, res: int) -> np.ndarray:
    """Decode latents on a res x res grid (super-resolution above the training resolution): (B, res, res, C)."""
    return to_uint8(gon.decode(z, grid(res)), res)


def render_prior(gon, z: torch.Tensor, res: int) -> np.ndarray:
    """Decode latents drawn by gon.sample_latents (a variational run's prior skips the head): (B, res, res, C)."""
    if gon.model.head is not None:
        return to_uint8(gon.decode_prior(z, grid(res)), res)
    return render(gon, z, res)


def upscale_nearest(images: np.ndarray, res: int) -> np.ndarray:
    """(n, h, w, C) uint8 -> (n, res, res, C) by nearest neighbour, so originals shown beside a super-resolved
    rendering keep their visible pixels."""
    if images.shape[1] == res:
        return images
    rows = (np.arange(res) * images.shape[1] // res)
    cols = (np.arange(res) * images.shape[2] // res)
    return images[:, rows][:, :, cols]


def comparison(originals: np.ndarray, rendered: np.ndarray, label: str, cols: int | None = None) -> np.ndarray:
    """A labelled two-row picture: originals (n, h, w, C) (enlarged by nearest neighbour to the rendering's size)
    above their renderings (n, res, res, C)."""
    from implicit_gon.media import compare_grid
    res = rendered.shape[1]
    return compare_grid([(f"original {originals.shape[1]}px", upscale_nearest(originals, res)),
                         (label, rendered)], cols)


def nearest(train: np.ndarray, queries: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each query image (n, r, r, C) uint8, the index of the training image (N, r, r, C) uint8 closest to it
    in squared pixel distance, and that distance per pixel value (MSE in [0, 1] units): (n,), (n,). The training set
    is read chunk images at a time, so a memory-mapped dataset is never loaded whole."""
    q = torch.from_numpy(queries.reshape(len(queries), -1).astype(np.float32) / 255)  # (n, D)
    best = torch.full((len(q),), float("inf"))
    arg = torch.zeros(len(q), dtype=torch.long)
    for s in range(0, len(train), chunk):
        t = torch.from_numpy(np.ascontiguousarray(train[s:s + chunk]).reshape(-1, q.shape[1]).astype(np.float32) / 255)
        d = torch.cdist(q, t).square()  # (n, chunk)
        m, i = d.min(1)
        better = m < best
        best[better], arg[better] = m[better], i[better] + s
    return arg.numpy(), (best / q.shape[1]).numpy()
