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
