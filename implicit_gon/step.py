"""The gradient-origin step (Bond-Taylor & Willcocks 2021, Eq. 12) and the training objective.

Shapes: B samples, N coordinates (a Monte Carlo subset or the full grid), d coordinate dims, C output channels,
K latent dims, H hidden width. coords are (N, d) when the batch shares them (image and audio grids) or (B, N, d).
Every integral over coordinates is a per-sample sum, times `scale` = N_total / N, an unbiased estimate of the full sum.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
from torch import autograd

from .conv import step_mode
from .errors import GONError
from .siren import Siren

if TYPE_CHECKING:
    from .config import GONConfig

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (pred, target) -> per-element loss


def _bce(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # F's output is a probability (sigmoid head); clamp keeps log finite where it saturates
    y = y.clamp(1e-6, 1 - 1e-6)
    return -(x * torch.log(y) + (1 - x) * torch.log1p(-y))


def make_loss(name: str, clamp: float = 0.1) -> LossFn:
    """Per-element loss(pred, target) named by gon.loss (its choices are checked with the config); callers sum it
    per sample."""
    return {"mse": lambda y, x: (y - x).square(), "l1": lambda y, x: (y - x).abs(), "bce": _bce,
            "clamped_l1": lambda y, x: clamped_l1(y, x, clamp)}[name]


def clamped_l1(y: torch.Tensor, x: torch.Tensor, delta: float) -> torch.Tensor:
    """DeepSDF's |clamp(y) - clamp(x)| where it matters. The prediction is clamped only on the side where the
    target is beyond the band (there, further out is as good), never where the target is inside the band: DeepSDF's
    form has zero gradient for a prediction outside the band, which stalls a network that starts outside it."""
    y = torch.where(x >= delta, y.clamp(max=delta), torch.where(x <= -delta, y.clamp(min=-delta), y))
    return (y - x.clamp(-delta, delta)).abs()


def per_sample(loss: torch.Tensor) -> torch.Tensor:
    return loss.flatten(1).sum(1)  # (B, N, C) -> (B,)


def decode_mean(model, coords, z: torch.Tensor) -> torch.Tensor:
    """F(c ⊕ z) through the variational head's mean (the step is deterministic): (B, K) -> (B, N, C). Any decoder
    with `head` and `after_head` (Siren, ConvDecoder)."""
    return model.after_head(coords, z if model.head is None else model.head.mu(z))


def inner_grad(model, coords, values, z, loss_fn: LossFn, scale: float, create_graph: bool):
    """General path, for any decoder: grad_z sum_c loss(x(c), F(c ⊕ z)) by plain autograd (double backward when
    training). z (B, K) -> (B, K). Summed, not averaged, over the batch, so each row is that sample's own gradient."""
    if not z.requires_grad:
        z = z.requires_grad_()
    y = decode_mean(model, coords, z)  # (B, N, C)
    total = scale * loss_fn(y, values).sum()
    return autograd.grad(total, z, create_graph=create_graph)[0]


def inner_grad_at_origin(model: Siren, coords, values, loss_fn: LossFn, scale: float, create_graph: bool):
    """Fast path, exact at z0 = 0: the first pre-activation there does not depend on the sample, so F(c ⊕ 0)
    and dF/dpre are computed once for shared coords, and each sample's gradient is
    dP/dz^T sum_{n,c} r_b(n,c) dF_c(n)/dpre(n), with r_b = dloss/dF the sample's own loss derivative."""
    B = values.shape[0]
    zero = values.new_zeros(1, model.latent_dim)
    pre_c = model.input.pre_coords(coords)  # (N, H) or (B, N, H)
    pre0 = pre_c + model.latent_pre(zero)
    if not pre0.requires_grad:  # evaluation under no parameter grads: still need d/dpre
        pre0 = pre0.detach().requires_grad_()
    y0 = model.decode_pre(pre0, pre_c)  # (N, C) or (B, N, C); F(c ⊕ 0) is a constant of pre0
    C = y0.shape[-1]  # F's channels (values may have fewer: a converting inner loss sees a view of F)
    # per-point Jacobian rows: points are independent, so the grad of the sum is each point's own row
    jac = torch.stack([autograd.grad(y0[..., c].sum(), pre0, retain_graph=True, create_graph=create_graph)[0]
                       for c in range(C)], dim=-2)  # (..., N, C, H)
    y0b = y0.expand(B, *y0.shape[-2:]) if y0.dim() == 2 else y0  # (B, N, C), a view: no copy
    r = autograd.grad(scale * loss_fn(y0b, values).sum(), y0b, create_graph=create_graph)[0]  # (B, N, C)
    eq = "bnc,nch->bh" if jac.dim() == 3 else "bnc,bnch->bh"
    m = torch.einsum(eq, r, jac)  # (B, H): each sample's dL/dpre summed over coordinates
    z0 = values.new_zeros(B, model.latent_dim, requires_grad=True)
    # latent_pre is affine, so this vector-Jacobian product is exact wherever it is taken
    return autograd.grad(model.latent_pre(z0), z0, grad_outputs=m, create_graph=create_graph)[0]  # (B, K)


def likelihood_loss(cfg: GONConfig) -> LossFn:
    """Per-element negative log-likelihood of a variational run, less its constant."""
    if cfg.likelihood == "bernoulli":  # else gaussian: the config's choices are these two
        return make_loss("bce")
    return lambda y, x: (y - x).square() / (2 * cfg.sigma**2)


def step_loss(model, cfg: GONConfig) -> LossFn:
    """The loss inside the gradient step: the configured one, or a variational run's likelihood."""
    return likelihood_loss(cfg) if model.head is not None else make_loss(cfg.loss, cfg.clamp)


def draw_origin(cfg: GONConfig, batch: int, latent_dim: int, device, dtype,
                generator: torch.Generator | None) -> torch.Tensor | None:
    """Each sample's z0 ~ N(0, cfg.origin_std^2 I) for one training step (the paper's Appendix C): (B, K), or None
    (the origin) when origin_std is 0, which draws nothing, so such a run's random stream is unchanged."""
    if not cfg.origin_std:
        return None
    if generator is None:
        raise GONError(f"gon.origin_std = {cfg.origin_std:g} draws each z0 from a generator: pass generator= "
                       f"(training passes the step's seeded one)")
    return cfg.origin_std * torch.randn(batch, latent_dim, generator=generator, device=device, dtype=dtype)


def gon_latents(model, coords, values, cfg: GONConfig, scale: float = 1.0, create_graph: bool = True,
                inner_loss: LossFn | None = None, origin: torch.Tensor | None = None):
    """z = z0 - a grad_z0 L(z0) at z0 = 0 (then cfg.inner_steps - 1 further steps). (B, N, C) values -> (B, K).
    inner_loss, if given, replaces the configured loss inside the step (modality conversion compares a view of
    F's output with the source signal, so values may have fewer channels than F's output). origin (B, K), if
    given, is each sample's z0 instead of 0 (draw_origin); it takes the general path, the shared one is exact at 0
    only."""
    loss_fn = step_loss(model, cfg) if inner_loss is None else inner_loss
    with step_mode(model):  # BatchNorm on running statistics: no sample's latent depends on its batch-mates
        if origin is not None:
            z = origin - cfg.step_size * inner_grad(model, coords, values, origin, loss_fn, scale, create_graph)
        elif cfg.fast and getattr(model, "shared_origin", False):  # the SIREN's exact shared-origin path
            z = -cfg.step_size * inner_grad_at_origin(model, coords, values, loss_fn, scale, create_graph)
        else:
            zero = values.new_zeros(values.shape[0], model.latent_dim)
            z = -cfg.step_size * inner_grad(model, coords, values, zero, loss_fn, scale, create_graph)  # (B, K)
        for _ in range(cfg.inner_steps - 1):
            z = z - cfg.step_size * inner_grad(model, coords, values, z, loss_fn, scale, create_graph)
    return z


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, in nats: (B, K) -> (B,)."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)


def gaussian_nll_const(sigma: float) -> float:
    """-log N(x; y, sigma^2) = (x - y)^2 / (2 sigma^2) + this constant, per element."""
    return 0.5 * math.log(2 * math.pi * sigma**2)


def nll_per_sample(y, values, cfg: GONConfig, scale: float = 1.0) -> torch.Tensor:
    """Negative log-likelihood of the ELBO's reconstruction term per sample, in nats: (B,)."""
    nll = per_sample(likelihood_loss(cfg)(y, values))
    if cfg.likelihood == "gaussian":
        nll = nll + values[0].numel() * gaussian_nll_const(cfg.sigma)
    return scale * nll


def gon_objective(model, coords, values, cfg: GONConfig, scale: float = 1.0,
                  generator: torch.Generator | None = None, beta: float | None = None, query=None):
    """The outer loss of one batch and its parts. Latents come from the gradient-origin step (from a z0 drawn
    from generator when cfg.origin_std > 0), and F's parameters are trained through that step (second order)
    unless cfg.detach. query (coords, values, scale), if given, is
    where the outer loss is measured instead of the step's own points (the paper uses the same points)."""
    origin = draw_origin(cfg, values.shape[0], model.latent_dim, values.device, values.dtype, generator)
    z = gon_latents(model, coords, values, cfg, scale, create_graph=not cfg.detach, origin=origin)
    if cfg.detach:
        z = z.detach()
    if query is not None:
        coords, values, scale = query
    return outer_loss(model, z, coords, values, cfg, scale, generator, beta)


def outer_loss(model, z, coords, values, cfg: GONConfig, scale: float = 1.0,
               generator: torch.Generator | None = None, beta: float | None = None, adjust=None):
    """Reconstruction (or negative ELBO) of values at coords from latents z (B, K): (loss, parts). adjust, if
    given, maps F's output to what is compared with values (a colourisation keeps the source's luminance)."""
    y, mu, logvar = model(coords, z, generator)  # (B, N', C)
    y = adjust(y) if adjust is not None else y
    recon = scale * per_sample(step_loss(model, cfg)(y, values))  # (B,)
    parts = {"recon": recon.mean()}
    if mu is None:
        return parts["recon"], parts
    kl = kl_standard_normal(mu, logvar)  # (B,)
    nll = nll_per_sample(y, values, cfg, scale)
    parts.update(kl=kl.mean(), nll=nll.mean())
    w = cfg.beta if beta is None else beta
    return (nll + w * kl).mean(), parts  # the negative ELBO (Eq. 10), KL weighted
