"""Modality conversion (paper Sec. 3.5): the inner loss compares a view of F's output with the source signal, the
outer loss compares F's output with the whole target. For images the views are the luminance of a colour image,
a box-downsampled image and a subset of the pixels (signals/views.py builds the sources); only `gray` changes what
F's output looks like to the inner loss (its luminance), the others change where it is sampled.

Colourisation keeps the luminance it is given (as colourisation methods that predict chrominance from a known
lightness do): the conversion is F's output shifted to the source's luminance, so F's colours carry the chroma and a
grey F gives exactly the naive answer (the gray image replicated to RGB)."""
from __future__ import annotations

from typing import Any

import torch

from ..grids import LUMA, keep_luminance, luminance  # noqa: F401 (LUMA re-exported)
from ..metrics import psnr_from_mse
from ..step import LossFn, gon_latents, outer_loss, per_sample, step_loss

def target_of(cfg, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The conversion F's output y (B, N, C) stands for, at the points where target (B, N, C) is: for a gray
    source, y at the source's luminance there (the target's own luminance is the source); else y itself."""
    return keep_luminance(y, luminance(target)) if cfg.data.source == "gray" else y


def inner_loss(model, cfg) -> LossFn:
    """The configured per-element loss between the source and the view of F's output the source is."""
    base = step_loss(model, cfg.gon)
    if cfg.data.source == "gray":
        return lambda y, x: base(luminance(y), x)
    return base


def objective(model, batch, cfg, generator=None, beta=None):
    """Encode batch (the source) in one step, measure the outer loss on batch.query (the target)."""
    z = gon_latents(model, batch.coords, batch.values, cfg.gon, batch.scale, create_graph=not cfg.gon.detach,
                    inner_loss=inner_loss(model, cfg))
    if cfg.gon.detach:
        z = z.detach()
    q = batch.query
    return outer_loss(model, z, q.coords, q.values, cfg.gon, q.scale, generator, beta,
                      adjust=lambda y: target_of(cfg, y, q.values))


def evaluate(gon, signal, idx: torch.Tensor, batch_size: int) -> dict[str, Any]:
    """Target sse and psnr from the source alone, beside the psnr of the source's naive reconstruction."""
    sse, psnr, naive = [], [], []
    for s in range(0, len(idx), batch_size):
        i = idx[s:s + batch_size]
        b = signal.full(i, gon.device)
        z = gon.encode_batch(b)
        with torch.no_grad():
            t = b.query
            y = target_of(gon.cfg, gon.model(t.coords, z)[0], t.values)
            err = per_sample((y - t.values).square()).cpu()  # (B,)
            n = t.values[0].numel()
            sse.append(err)
            psnr.append(psnr_from_mse(err / n))
            naive.append(psnr_from_mse(per_sample((signal.naive(i) - t.values.cpu()).square()) / n))
    return {"n": len(idx), "sse": torch.cat(sse).mean().item(), "psnr": torch.cat(psnr).mean().item(),
            "naive_psnr": torch.cat(naive).mean().item()}
