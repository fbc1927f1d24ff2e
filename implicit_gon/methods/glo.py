"""Generative Latent Optimisation (Bojanowski et al. 2018): one free latent per training image, learned jointly with
the decoder. The latents are parameters of F's module (`model.glo.z`, saved in the checkpoint). An image outside
the training set has no latent: encoding fits one by Adam with the decoder fixed (method.glo_encode_steps), from
the training latents' mean, on the same summed per-sample loss (so each image's fit is its own)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GONError
from ..step import outer_loss, per_sample, step_loss


class Latents(nn.Module):
    """z (n, K): the training images' latents, N(0, 0.1^2 I) at the start (distinct, so BatchNorm's batch
    statistics are not degenerate on the first steps)."""

    def __init__(self, n: int, latent_dim: int, lr_mult: float):
        super().__init__()
        self.z = nn.Parameter(0.1 * torch.randn(n, latent_dim))
        self.lr_mult = lr_mult  # train.make_optimizer gives a submodule with lr_mult its own learning rate


def attach(model, cfg, meta) -> None:
    from .. import limits
    n = meta.get("train_samples")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GONError(f"method glo needs meta.train_samples, the number of training images its latents are for "
                       f"(a positive integer, not {n!r:.40})")
    # the latents, their gradients and Adam's two moments, before they are allocated
    limits.check(f"GLO latents of {n:,} training samples", 4 * n * model.latent_dim * limits.F32,
                 "train on fewer samples (--train-limit)")
    model.glo = Latents(n, model.latent_dim, cfg.method.glo_lr_mult)


def objective(model, batch, cfg, generator=None, beta=None):
    z = model.glo.z[batch.index]  # (B, K)
    return outer_loss(model, z, batch.coords, batch.values, cfg.gon, batch.scale, generator, beta)


def training_latents(gon, idx) -> torch.Tensor:
    z = gon.model.glo.z.detach()
    return z if idx is None else z[torch.as_tensor(idx, device=z.device)]


def encode(gon, batch) -> torch.Tensor:
    """Fit latents (B, K) to batch with the decoder fixed (eval mode: BatchNorm on running statistics)."""
    m, mc = gon.model, gon.cfg.method
    m.eval()
    z = m.glo.z.detach().mean(0).expand(len(batch.values), -1).clone().requires_grad_()
    opt = torch.optim.Adam([z], lr=mc.glo_encode_lr)
    loss_fn = step_loss(m, gon.cfg.gon)
    with torch.enable_grad():
        for _ in range(mc.glo_encode_steps):
            y = m.after_head(batch.coords, z)  # (B, N, C)
            loss = (batch.scale * per_sample(loss_fn(y, batch.values))).sum()  # summed: each row its own fit
            opt.zero_grad(set_to_none=True)
            (g,) = torch.autograd.grad(loss, z)
            z.grad = g
            opt.step()
    return z.detach()

