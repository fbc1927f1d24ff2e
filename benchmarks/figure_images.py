"""One picture of what an image run gives: reconstructions of training and held-out images, samples, a 256 px render.

    python benchmarks/figure_images.py RUN OUT.png [--n 8] [--res 256]

Rows: training images, their one-step reconstructions, held-out images, their reconstructions, samples from the
Gaussian fitted to the training latents; on the right the first training image rendered at --res. Every latent is
one gradient step on the full grid (as `implicit-gon render` encodes). The data come from the run's own config.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from common import positive, run_benchmark
from implicit_gon.api import GON
from implicit_gon.errors import GONError
from signals import image_signal
from signals.images import render, render_prior

PAD = 2


def strip(images: np.ndarray) -> np.ndarray:
    """(n, r, r, C) uint8 -> one row (r, n (r + PAD) - PAD, C), white gaps."""
    n, r, _, c = images.shape
    row = np.full((r, n * (r + PAD) - PAD, c), 255, np.uint8)
    for i, im in enumerate(images):
        row[:, i * (r + PAD):i * (r + PAD) + r] = im
    return row


def stack(rows: list[np.ndarray], side: np.ndarray) -> np.ndarray:
    """Rows one above the other, the side image to their right, each centred vertically."""
    w = max(r.shape[1] for r in rows)  # a held-out set smaller than --n gives a shorter row: pad it on the right
    left = np.concatenate([np.pad(r, ((0, PAD), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    h = max(left.shape[0], side.shape[0])
    pad = lambda a: np.pad(a, (((h - a.shape[0]) // 2, h - a.shape[0] - (h - a.shape[0]) // 2), (0, 0), (0, 0)),
                           constant_values=255)
    return np.concatenate([pad(left), np.full((h, 4 * PAD, left.shape[2]), 255, np.uint8), pad(side)], axis=1)


def reconstruct(gon: GON, signal, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = torch.arange(min(n, len(signal)))
    z = gon.encode_signal(signal, idx)
    return signal.images[idx.numpy()], render(gon, z, signal.res)


def figure(run: Path, n: int, res: int) -> np.ndarray:
    gon = GON.load(run, "cpu")
    train = image_signal(gon.cfg.data, "train", progress=False)
    test = image_signal(gon.cfg.data, "test", progress=False, notes=False)
    rows = [strip(a) for a in (*reconstruct(gon, train, n), *reconstruct(gon, test, n))]
    if gon.gaussian is None:
        gon.fit_gaussian(train)
    z = gon.sample_latents(n, torch.Generator().manual_seed(0))
    rows.append(strip(render_prior(gon, z, train.res)))
    big = render(gon, gon.encode_signal(train, torch.arange(1)), res)[0]
    out = stack(rows, big)
    return np.repeat(out, 3, axis=2) if out.shape[2] == 1 else out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=positive(int), default=8)
    ap.add_argument("--res", type=positive(int), default=256)
    args = ap.parse_args()
    if args.n > 64 or args.res > 1024:
        ap.error("--n at most 64, --res at most 1024")
    if not args.out.parent.is_dir():
        raise GONError(f"{args.out.parent}: folder not found")
    from PIL import Image
    tmp = args.out.with_name(args.out.name + ".tmp.png")
    Image.fromarray(figure(args.run, args.n, args.res)).save(tmp, optimize=True)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_benchmark(main)
