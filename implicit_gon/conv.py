"""The paper's convolutional GON decoder (Bond-Taylor & Willcocks 2021, Sec. 4.1): z as a (K, 1, 1) map through
4 ConvTranspose2d layers, BatchNorm and ELU between them, to a 28 or 32 px image with a sigmoid output.

It has no coordinates: F renders the whole training grid, and the values at a batch's coordinates (pixel centres of
that grid, as signals.images.grid makes them; a Monte Carlo subset when train.points < 1) are gathered from it.
Any other coordinates (another resolution) are a one-line error.

BatchNorm: the authors' conv script keeps F in training mode for both passes, so the gradient step sees batch
statistics (each latent depends on the other samples of its batch, and at z0 = 0 every sample has the same input,
so the first layer's batch variance is 0). Here the step always uses running statistics (`step_mode`), in training
and at encode time alike, so a latent is a function of its own image only, the same in training and after it; the
outer pass trains with batch statistics, as the authors', and alone updates the running ones.
"""
from __future__ import annotations

import contextlib
import math

from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import GONError, UsageError, natural_list
from .grids import pixel_grid
from .registry import DecoderSpec, register_decoder
from .siren import HeadedDecoder, VariationalHead

if TYPE_CHECKING:
    from .config import ModelConfig

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "gelu": nn.GELU,
               "tanh": nn.Tanh}
"""model.conv_activation: the nonlinearity after each BatchNorm (the paper's Fig. 3 compares them)."""

# (kernel, stride, padding) per layer: 1 -> 4 -> 7 -> 14 -> 28, or 1 -> 4 -> 8 -> 16 -> 32
PLANS = {28: ((4, 1, 0), (3, 2, 1), (4, 2, 1), (4, 2, 1)), 32: ((4, 1, 0), (4, 2, 1), (4, 2, 1), (4, 2, 1))}


def widths(latent_dim: int, width: int, channels: int) -> list[int]:
    """Channels along the decoder: K -> 4w -> 2w -> w -> C (the DCGAN-style halving of the authors' script)."""
    return [latent_dim, 4 * width, 2 * width, width, channels]


class ConvDecoder(HeadedDecoder):
    """F(z) -> values (B, N, C) at the pixel centres given as coords (N, 2) or (B, N, 2) of the res x res grid."""

    shared_origin = False  # no shared-origin fast path: the step takes the general autograd path
    grid_only = True  # renders its training grid only (GON.decode does not chunk coordinates)

    def __init__(self, res: int, out_dim: int, cfg: ModelConfig):
        super().__init__()
        if res not in PLANS:
            raise GONError(f"model.decoder conv renders {natural_list(PLANS, 'or')} px images (this run's "
                           f"data are {res} px: set data.res)")
        self.res, self.out_dim, self.latent_dim = res, out_dim, cfg.latent_dim
        w = widths(cfg.latent_dim, cfg.conv_width, out_dim)
        layers: list[nn.Module] = []
        for i, (k, s, p) in enumerate(PLANS[res]):
            layers.append(nn.ConvTranspose2d(w[i], w[i + 1], k, s, p))
            if i < len(PLANS[res]) - 1:
                layers += [nn.BatchNorm2d(w[i + 1]), ACTIVATIONS[cfg.conv_activation]()]
        self.main = nn.Sequential(*layers)
        self.head = VariationalHead(cfg.latent_dim, cfg.head_init_std) if cfg.variational else None

    def convs(self) -> list[nn.ConvTranspose2d]:
        """The four transposed convolutions in order (a tied encoder shares their weights)."""
        return [m for m in self.main if isinstance(m, nn.ConvTranspose2d)]

    def image(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, K) -> images (B, C, res, res) in [0, 1]."""
        return torch.sigmoid(self.main(z[:, :, None, None]))

    def after_head(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """F on z' (after the head): the image's values at coords, (B, N, C)."""
        y = self.image(z).permute(0, 2, 3, 1).reshape(len(z), -1, self.out_dim)  # (B, res*res, C), row-major
        idx = self.pixel_index(coords)
        if idx is None:
            return y
        if idx.dim() == 1:
            return y[:, idx]
        return torch.gather(y, 1, idx[..., None].expand(-1, -1, self.out_dim))  # per-sample subsets

    def pixel_index(self, coords: torch.Tensor) -> torch.Tensor | None:
        """Row-major pixel indices of coords (..., N, 2) on the training grid (None: the whole grid in order).
        Coordinates off the grid's pixel centres (another resolution) are an error: there is nothing to render."""
        r = self.res
        if coords.dim() == 2 and len(coords) == r * r:
            if torch.allclose(coords, pixel_grid(r, coords.device, coords.dtype), atol=1e-5):
                return None
        pos = (coords.detach() + 1) / 2 * r - 0.5  # (..., N, 2) in pixel units
        rc = pos.round()
        if not torch.allclose(pos, rc, atol=1e-3) or rc.min() < 0 or rc.max() > r - 1:
            n = coords.shape[-2]
            side = math.isqrt(n)
            asked = f"{side}x{side}" if side * side == n else f"{n} points"
            raise off_grid(r, f"{asked} coordinates", "give the pixel centres of its grid")
        rc = rc.long()
        return rc[..., 0] * r + rc[..., 1]


def off_grid(r: int, asked: str, instead: str = "leave out --res") -> UsageError:
    """The one refusal for asking a grid-only decoder for another resolution (asked: what was asked, e.g. the flag)."""
    return UsageError(f"{asked}: a conv GON renders only its {r}x{r} training grid (it has no coordinates; {instead}, "
                      f"or train an implicit GON with --decoder siren)")


@contextlib.contextmanager
def step_mode(model: nn.Module):
    """BatchNorm layers of model use their running statistics (and leave them alone) inside the gradient step, in
    training as at encode time: the step's per-sample sum then has no terms coupling samples, so a latent does not
    depend on which batch it was computed in. A no-op for models without BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


register_decoder(DecoderSpec("conv", lambda meta, cfg: ConvDecoder(meta["res"], meta["out_dim"], cfg), signals=("images",),
                             grid_sizes=tuple(PLANS), describe=lambda m: f"conv width {m.conv_width}"))
