"""A straightforward implementation of the paper's Equation 12, the baseline the benchmarks compare against.

The latent is repeated per coordinate and concatenated with it, the SIREN is one nn.Sequential on c ⊕ z,
the inner gradient is plain autograd with create_graph, and the loss is the paper's (summed per sample,
averaged over the batch, so its step size is 1). Same architecture and initialisation as the engine's Siren.
"""
from __future__ import annotations

import torch
from torch import nn

from implicit_gon.config import ModelConfig
from implicit_gon.siren import SineLayer, Siren


class ConcatSiren(nn.Module):
    def __init__(self, coord_dim: int, out_dim: int, cfg: ModelConfig):
        super().__init__()
        ref = Siren(coord_dim, out_dim, cfg)  # same initialisation as the engine, copied into one first layer
        first = SineLayer(coord_dim + cfg.latent_dim, cfg.hidden, cfg.w0_first)
        with torch.no_grad():
            first.linear.weight.copy_(torch.cat([ref.input.coord.weight, ref.input.latent.weight], 1))
            first.linear.bias.copy_(ref.input.coord.bias)
        self.net = nn.Sequential(first, *ref.body, ref.out)
        self.sigmoid = cfg.out_activation == "sigmoid"

    def forward(self, coords, z):  # coords (N, d), z (B, K) -> (B, N, C)
        B, N = z.shape[0], coords.shape[0]
        x = torch.cat([coords.expand(B, N, -1), z[:, None, :].expand(B, N, -1)], -1)  # (B, N, d + K)
        y = self.net(x)
        return torch.sigmoid(y) if self.sigmoid else y


def eq12_loss(model: ConcatSiren, coords, values):
    """One training loss of the paper's implicit GON: full grid, z = -grad at the origin, trained through it."""
    z0 = torch.zeros(values.shape[0], model.net[0].linear.in_features - coords.shape[-1], requires_grad=True)
    inner = ((model(coords, z0) - values) ** 2).sum((1, 2)).mean()
    z = -torch.autograd.grad(inner, z0, create_graph=True)[0]
    return ((model(coords, z) - values) ** 2).sum((1, 2)).mean()


TRAIN_BATCH = 64
"""Eq. 12 averages its inner loss over the batch, so each latent is the step scaled by 1 / batch size: it is
scored at the scale it was trained at, 1/64, for every held-out batch (1,000 = 15 x 64 + 40: a `.mean()` would give
the last 40 digits 1/40)."""


def eq12_step(model, opt, sig, step: int) -> None:
    """One training step of the baseline: batch TRAIN_BATCH of the engine's (seed 0, step) sequence, full grid."""
    from implicit_gon.train import batch_indices
    b = sig.full(batch_indices(len(sig), TRAIN_BATCH, 0, step), "cpu")
    opt.zero_grad()
    eq12_loss(model, b.coords, b.values).backward()
    opt.step()


def eval_eq12(model: ConcatSiren, sig) -> dict[str, float]:
    """Held-out PSNR (peak 1) and SSE per sample, each latent one step on the full grid at the training scale."""
    psnr, sse = [], []
    latent = model.net[0].linear.in_features - sig.coord_dim
    for s in range(0, len(sig), TRAIN_BATCH):
        b = sig.full(torch.arange(s, min(s + TRAIN_BATCH, len(sig))), "cpu")
        z0 = torch.zeros(len(b.values), latent, requires_grad=True)
        inner = ((model(b.coords, z0) - b.values) ** 2).sum() / TRAIN_BATCH  # the training scale, any batch length
        z = -torch.autograd.grad(inner, z0)[0]
        with torch.no_grad():
            err = (model(b.coords, z) - b.values) ** 2  # (B, N, C)
        psnr.append(10 * torch.log10(1 / err.mean((1, 2))))
        sse.append(err.sum((1, 2)))
    return {"psnr": torch.cat(psnr).mean().item(), "sse": torch.cat(sse).mean().item()}
