"""The GON classifier (paper Eq. 13): the latent is the usual one-step encoding (inner loss: reconstruction), and
the outer loss is the cross-entropy of softmax(W z + b) with the class. F is trained through the step, so it learns
an origin whose reconstruction gradients separate the classes; there is no encoder. `joint` adds the
reconstruction, so one model reconstructs and classifies."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..metrics import psnr_from_mse
from ..config import GONConfig
from ..errors import GONError
from ..step import gon_latents, outer_loss, per_sample


def attach(model: nn.Module, n_classes: int) -> None:
    """The linear layer W z + b on the latent (K,) -> logits, its input standardised by batch statistics (running
    ones at test time, so there it is one affine map of z). The one-step latents are small and their scale moves
    while F trains; a bare linear layer at Adam's step size needs ~1e5 steps to follow (measured on digits: 58%
    held-out accuracy after 600 steps bare, 81% standardised)."""
    model.classifier = nn.Sequential(nn.BatchNorm1d(model.latent_dim, affine=False),
                                     nn.Linear(model.latent_dim, n_classes))


def latents(model, batch, cfg: GONConfig) -> torch.Tensor:
    """The step's latents (B, K), trained through unless cfg.detach."""
    z = gon_latents(model, batch.coords, batch.values, cfg, batch.scale, create_graph=not cfg.detach)
    return z.detach() if cfg.detach else z


def scores(model, z: torch.Tensor, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy per sample (B,) and whether each sample is classified right (B,)."""
    if labels is None:
        raise GONError("classification needs labelled batches (the signal was built without labels)")
    logits = model.classifier(z)  # (B, classes)
    return F.cross_entropy(logits, labels, reduction="none"), logits.argmax(1) == labels


def objective(model, batch, cfg: GONConfig):
    """Eq. 13: mean cross-entropy of the linear layer on the one-step latent."""
    ce, right = scores(model, latents(model, batch, cfg), batch.labels)
    return ce.mean(), {"ce": ce.mean(), "acc": right.float().mean()}


def joint_objective(model, batch, cfg: GONConfig, generator=None, beta=None):
    """Reconstruction (summed per sample, as the step's) plus class_weight x cross-entropy, from one latent."""
    z = latents(model, batch, cfg)
    q = batch.query or batch
    rec, parts = outer_loss(model, z, q.coords, q.values, cfg, q.scale, generator, beta)
    ce, right = scores(model, z, batch.labels)
    return rec + cfg.class_weight * ce.mean(), {**parts, "ce": ce.mean(), "acc": right.float().mean()}


def evaluate(gon, signal, idx: torch.Tensor, batch_size: int, recon: bool) -> dict[str, Any]:
    """accuracy (fraction right) and mean cross-entropy of the held-out samples; sse and psnr too when recon."""
    ce, right, sse, psnr = [], [], [], []
    for s in range(0, len(idx), batch_size):
        b = signal.full(idx[s:s + batch_size], gon.device)
        z = gon.encode_batch(b)
        with torch.no_grad():
            c, r = scores(gon.model, z, b.labels)
            ce.append(c.cpu())
            right.append(r.cpu())
            if recon:
                err = per_sample((gon.model(b.coords, z)[0] - b.values).square())  # (B,)
                sse.append(err.cpu())
                psnr.append(psnr_from_mse(err / b.values[0].numel()).cpu())
    out = {"n": len(idx), "accuracy": torch.cat(right).float().mean().item(), "ce": torch.cat(ce).mean().item()}
    if recon:
        out.update(sse=torch.cat(sse).mean().item(), psnr=torch.cat(psnr).mean().item())
    return out
