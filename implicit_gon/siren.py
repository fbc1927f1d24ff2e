"""SIREN F(c ⊕ z). Each layer owns its initialisation (Sitzmann et al. 2020, Sec. 3.2)."""
from __future__ import annotations

import math

from typing import TYPE_CHECKING

import torch
from torch import nn

from .precision import full_precision, wide
from .registry import DecoderSpec, register_decoder

if TYPE_CHECKING:
    from .config import ModelConfig


def _uniform_(t: torch.Tensor, bound: float) -> None:
    with torch.no_grad():
        t.uniform_(-bound, bound)


class SineLayer(nn.Module):
    """sin(w0 (W x + b)); hidden-layer init U(±sqrt(6/fan_in)/w0) keeps activations arcsine-distributed."""

    def __init__(self, d_in: int, d_out: int, w0: float):
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(d_in, d_out)
        _uniform_(self.linear.weight, math.sqrt(6.0 / d_in) / w0)
        _uniform_(self.linear.bias, 1.0 / math.sqrt(d_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * wide(self.linear(x)))  # the sine's argument in float32 under autocast


class LatentInput(nn.Module):
    """First layer on c ⊕ z, applied as w0 (W_c c + b) + w0_z W_z z: the latent is never repeated per coordinate.

    init `concat` is one SIREN first layer on the concatenated input, U(±1/fan_in) with fan_in = d + K (the paper);
    `siren` gives W_c SIREN's first-layer init on coordinates alone, U(±1/d), and W_z U(±1/K).
    """

    def __init__(self, coord_dim: int, latent_dim: int, hidden: int, w0: float, w0_latent: float | None = None,
                 init: str = "concat"):
        super().__init__()
        self.w0, self.w0_latent = w0, w0 if w0_latent is None else w0_latent
        self.coord = nn.Linear(coord_dim, hidden)  # W_c and the layer's bias
        self.latent = nn.Linear(latent_dim, hidden, bias=False)  # W_z
        fan_in = coord_dim + latent_dim  # init is model.first_init, one of these (checked with the config)
        bounds = {"concat": (1.0 / fan_in, 1.0 / fan_in), "siren": (1.0 / coord_dim, 1.0 / latent_dim)}[init]
        _uniform_(self.coord.weight, bounds[0])
        _uniform_(self.latent.weight, bounds[1])
        _uniform_(self.coord.bias, 1.0 / math.sqrt(fan_in))

    def pre_coords(self, c: torch.Tensor) -> torch.Tensor:
        with full_precision(c):  # w0 = 30 times the coordinates: float32 even under autocast
            return self.w0 * self.coord(wide(c))  # (..., N, d) -> (..., N, H)

    def pre_latent(self, z: torch.Tensor) -> torch.Tensor:
        with full_precision(z):
            return self.w0_latent * self.latent(wide(z))  # (B, K) -> (B, H)


class VariationalHead(nn.Module):
    """Linear mean and log-variance over z and the reparameterisation trick: a stochastic layer inside F.

    Starts as a pass-through with a little noise (mean map I, log-variance 2 log init_std): with a random mean map
    and unit noise the noise swamps the small origin-step latents, F learns to ignore z and the posterior collapses.
    """

    def __init__(self, latent_dim: int, init_std: float = 0.2):
        super().__init__()
        self.mu = nn.Linear(latent_dim, latent_dim)
        self.logvar = nn.Linear(latent_dim, latent_dim)
        with torch.no_grad():
            self.mu.weight.copy_(torch.eye(latent_dim))
            self.mu.bias.zero_()
            self.logvar.weight.zero_()
            self.logvar.bias.fill_(2 * math.log(init_std))

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None, sample: bool | None = None):
        """(z', mu, logvar); z' is a reparameterised draw when sampling (default: in training mode), else mu."""
        mu, logvar = self.mu(z), self.logvar(z)  # (B, K) each
        if not (self.training if sample is None else sample):
            return mu, mu, logvar
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar


class HeadedDecoder(nn.Module):
    """A decoder F whose latent may pass a variational head first: subclasses set self.head (or None) and define
    after_head(coords, z'); forward is the same for every decoder."""

    def forward(self, coords: torch.Tensor, z: torch.Tensor, generator: torch.Generator | None = None):
        """Returns (values (B, N, C), mu, logvar); mu and logvar are None without the variational head."""
        mu = logvar = None
        if self.head is not None:
            z, mu, logvar = self.head(z, generator)
        return self.after_head(coords, z), mu, logvar


class Siren(HeadedDecoder):
    """F(c ⊕ z) -> values. coords (N, d) shared by the batch or (B, N, d); z (B, K); output (B, N, C)."""

    shared_origin = True  # the first pre-activation at z0 = 0 is the same for every sample: step.inner_grad_at_origin

    def __init__(self, coord_dim: int, out_dim: int, cfg: ModelConfig):
        super().__init__()
        self.coord_dim, self.out_dim, self.latent_dim = coord_dim, out_dim, cfg.latent_dim
        self.input = LatentInput(coord_dim, cfg.latent_dim, cfg.hidden, cfg.w0_first, cfg.w0_latent,
                                 cfg.first_init)
        self.body = nn.Sequential(*[SineLayer(cfg.hidden, cfg.hidden, cfg.w0_hidden) for _ in range(cfg.layers - 1)])
        self.out = nn.Linear(cfg.hidden, out_dim)
        _uniform_(self.out.weight, math.sqrt(6.0 / cfg.hidden) / cfg.w0_hidden)
        self.head = VariationalHead(cfg.latent_dim, cfg.head_init_std) if cfg.variational else None
        self.out_activation, self.zero_origin = cfg.out_activation, cfg.zero_origin  # checked with the config

    def trunk(self, pre: torch.Tensor) -> torch.Tensor:
        """Everything after the first pre-activation: (..., H) -> (..., C). Acts on each point on its own."""
        y = self.out(self.body(torch.sin(pre)))
        return torch.sigmoid(y) if self.out_activation == "sigmoid" else y

    def decode_pre(self, pre: torch.Tensor, pre_c: torch.Tensor) -> torch.Tensor:
        """Values from first pre-activations pre (..., N, H) whose coordinate term is pre_c: trunk(pre), less
        F(c ⊕ 0) = trunk(pre_c) when zero_origin. That term does not depend on the sample, so for shared coords
        (pre_c (N, H)) it costs one pass over N points, not B N."""
        y = self.trunk(pre)
        return y - self.trunk(pre_c) if self.zero_origin else y

    def latent_pre(self, z: torch.Tensor) -> torch.Tensor:
        """Deterministic latent contribution to the first pre-activation (the head's mean path): (B, K) -> (B, H).
        Affine in z, which the fast gradient-origin step relies on."""
        if self.head is not None:
            z = self.head.mu(z)
        return self.input.pre_latent(z)

    def after_head(self, coords: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """F on z' (the head's output, or z itself without a head): (B, K) -> values (B, N, C)."""
        pre_c = self.input.pre_coords(coords)  # (N, H) or (B, N, H)
        return self.decode_pre(pre_c + self.input.pre_latent(z)[:, None, :], pre_c)  # (B, N, C)


register_decoder(DecoderSpec("siren", lambda meta, cfg: Siren(meta["coord_dim"], meta["out_dim"], cfg),
                             describe=lambda m: f"SIREN {m.layers}x{m.hidden}"))
