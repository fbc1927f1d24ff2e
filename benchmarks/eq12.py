"""The baseline the benchmarks compare against: the authors' own implicit GON (cwkx/GON, Implicit-GON.py), rewritten
from a reading of that script, not copied, with its architecture, initialisation, grid and loss as they are there:

- F is one nn.Sequential on c ⊕ z (the latent repeated per coordinate): `layers` sine layers of `hidden` units,
  sin(30 (W x + b)) each (w0 = 30 in every layer, the first included), then a linear output layer.
- Weights: the first layer U(±1/fan_in) with fan_in = coordinates + latent (1/34 for MNIST); every later layer,
  the linear output included, U(±sqrt(6/fan_in)/30). Biases keep PyTorch's nn.Linear default, U(±1/sqrt(fan_in)).
- The grid: torch.linspace(-1, 1, side) per axis, meshgrid "ij", row-major (the pixel edges at ±1, not centres).
- The loss, inner and outer alike: ((F - x) ** 2).sum(1).mean(), summed over pixels and averaged over the batch
  and the channels; z = -grad at z0 = 0 with create_graph, trained through. Adam 1e-4, batch 64, every pixel.
- Outputs are clamped to [0, 1] where they are scored (the script clamps what it saves).

Adapted, as the benchmarks need: the data split (the engine's 9,000 / 1,000 split, its batches drawn by the
engine's seeded permutations in place of a shuffled DataLoader), the time budget, CPU threads and the process's
allocator setting (the callers'). The held-out score encodes each image with the inner loss at the training
scale (1/64 of the gradient of its own error), the only encoder the script has.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from implicit_gon.config import ModelConfig

W0 = 30.0
"""The script's omega_0, every sine layer alike."""
TRAIN_BATCH = 64
"""The script's batch size. Its inner loss averages over the batch, so each latent is the step scaled by 1/64: a
held-out image is scored at that scale in any batch (1,000 = 15 x 64 + 40: a `.mean()` would give the last 40
digits 1/40)."""
LR = 1e-4
"""The script's Adam learning rate (constant)."""


class SirenLayer(nn.Module):
    """nn.Linear with the script's init; sin(W0 x) after it unless it is the output layer."""

    def __init__(self, d_in: int, d_out: int, first: bool = False, last: bool = False):
        super().__init__()
        self.linear, self.last = nn.Linear(d_in, d_out), last  # bias: nn.Linear's own U(±1/sqrt(d_in))
        bound = 1.0 / d_in if first else math.sqrt(6.0 / d_in) / W0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y if self.last else torch.sin(W0 * y)


class ConcatSiren(nn.Module):
    """The script's F: [d + K] + [hidden] * layers + [C], on coordinates and the latent concatenated."""

    def __init__(self, coord_dim: int, out_dim: int, cfg: ModelConfig):
        super().__init__()
        dims = [coord_dim + cfg.latent_dim] + [cfg.hidden] * cfg.layers
        body = [SirenLayer(a, b, first=(i == 0)) for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))]
        self.net = nn.Sequential(*body, SirenLayer(dims[-1], out_dim, last=True))

    def forward(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # coords (N, d), z (B, K) -> (B, N, C)
        B, N = z.shape[0], coords.shape[0]
        return self.net(torch.cat([coords.expand(B, N, -1), z[:, None, :].expand(B, N, -1)], -1))


def authors_grid(side: int, dim: int = 2) -> torch.Tensor:
    """(side**dim, dim): torch.linspace(-1, 1) per axis, "ij" order, row-major like the images' pixels."""
    axes = torch.meshgrid(*([torch.linspace(-1, 1, side)] * dim), indexing="ij")
    return torch.stack(axes, -1).reshape(-1, dim)


def authors_loss(y: torch.Tensor, x: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """The script's ((y - x) ** 2).sum(1).mean() for (B, N, C): over pixels summed, over batch and channels
    averaged; batch (default B) fixes the divisor, so a short held-out batch is scaled as a training one."""
    return (y - x).square().sum() / ((batch or x.shape[0]) * x.shape[-1])


def latent(model: ConcatSiren, coords, values, create_graph: bool, batch: int | None = None) -> torch.Tensor:
    """z = -d(inner loss)/dz at z = 0: (B, K)."""
    z0 = torch.zeros(values.shape[0], model.net[0].linear.in_features - coords.shape[-1], requires_grad=True)
    inner = authors_loss(model(coords, z0), values, batch)
    return -torch.autograd.grad(inner, z0, create_graph=create_graph)[0]


def eq12_loss(model: ConcatSiren, coords, values):
    """One training loss of the script: full grid, z = -grad at the origin, trained through it."""
    z = latent(model, coords, values, create_graph=True)
    return authors_loss(model(coords, z), values)


def eq12_step(model, opt, sig, step: int) -> None:
    """One training step of the baseline: batch TRAIN_BATCH of the engine's (seed 0, step) sequence, full grid."""
    from implicit_gon.train import batch_indices
    b = sig.full(batch_indices(len(sig), TRAIN_BATCH, 0, step), "cpu")
    opt.zero_grad()
    eq12_loss(model, authors_grid(sig.res), b.values).backward()
    opt.step()


def eval_eq12(model: ConcatSiren, sig) -> dict[str, float]:
    """Held-out PSNR (peak 1) and SSE per sample of the clamped output, each latent one step on the full grid at
    the training scale."""
    psnr, sse = [], []
    coords = authors_grid(sig.res)
    for s in range(0, len(sig), TRAIN_BATCH):
        b = sig.full(torch.arange(s, min(s + TRAIN_BATCH, len(sig))), "cpu")
        z = latent(model, coords, b.values, create_graph=False, batch=TRAIN_BATCH)
        with torch.no_grad():
            err = (model(coords, z).clamp(0, 1) - b.values) ** 2  # (B, N, C)
        psnr.append(10 * torch.log10(1 / err.mean((1, 2))))
        sse.append(err.sum((1, 2)))
    return {"psnr": torch.cat(psnr).mean().item(), "sse": torch.cat(sse).mean().item()}
