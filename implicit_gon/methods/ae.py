"""Autoencoder baselines: a conv encoder that mirrors the conv decoder (Conv2d where it has ConvTranspose2d, the
same kernels, strides and paddings in reverse order, BatchNorm and ELU between), so image -> (K, 1, 1).

`tied-ae` shares the decoder's weights: encoder layer i is the adjoint of decoder layer i, conv2d with the very
ConvTranspose2d weight tensor (shape (in, out, k, k) of the transposed convolution is (out, in, k, k) of the
convolution going back), so the encoder adds only biases and BatchNorm parameters.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..step import outer_loss


def images_of(values: torch.Tensor, res: int) -> torch.Tensor:
    """(B, res*res, C) row-major values -> (B, C, res, res)."""
    return values.reshape(len(values), res, res, -1).permute(0, 3, 1, 2)


class ConvEncoder(nn.Module):
    """(B, res*res, C) images -> (B, out) through the decoder's layer plan reversed."""

    def __init__(self, decoder, out: int, tied: bool = False):
        super().__init__()
        self.res = decoder.res
        convs = decoder.convs()[::-1]  # decoder layer i maps w[i] -> w[i+1]; its mirror maps w[i+1] -> w[i]
        self.tied = tied
        self.weights = [c.weight for c in convs] if tied else None  # a plain list: not registered twice
        self.layers = nn.ModuleList()
        self.biases = nn.ParameterList()
        self.norms = nn.ModuleList()
        self.specs: list[tuple] = []  # (stride, padding) per layer
        for j, c in enumerate(convs):
            c_in, c_out = c.out_channels, c.in_channels
            last = j == len(convs) - 1
            if last and out != c_out:
                if tied:
                    raise ValueError("a tied encoder's output is the decoder's latent size")
                c_out = out
            if not tied:
                self.layers.append(nn.Conv2d(c_in, c_out, c.kernel_size, c.stride, c.padding))
            else:
                self.biases.append(nn.Parameter(torch.zeros(c_out)))
            self.specs.append((c.stride, c.padding))
            if not last:
                self.norms.append(nn.BatchNorm2d(c_out))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        x = images_of(values, self.res)
        n = len(self.specs)
        for j, (stride, pad) in enumerate(self.specs):
            if self.tied:
                x = F.conv2d(x, self.weights[j], self.biases[j], stride, pad)
            else:
                x = self.layers[j](x)
            if j < n - 1:
                x = F.elu(self.norms[j](x))
        return x.flatten(1)  # (B, out, 1, 1) -> (B, out)


def attach(model, cfg, meta) -> None:
    model.encoder = ConvEncoder(model, model.latent_dim, tied=cfg.method.name == "tied-ae")


def objective(model, batch, cfg, generator=None, beta=None):
    """The decoder's reconstruction of the encoder's latent: the same summed per-sample loss as the GON's."""
    z = model.encoder(batch.values)  # (B, K)
    return outer_loss(model, z, batch.coords, batch.values, cfg.gon, batch.scale, generator, beta)


def encode(gon, batch) -> torch.Tensor:
    with torch.no_grad():
        return gon.model.encoder(batch.values)
