"""The VAE baseline of the paper's Table 2: the ae encoder giving a posterior mean and log-variance (2K outputs),
a reparameterised draw decoded by the conv decoder, trained on the negative ELBO (the same likelihood, KL and
bits-per-dimension as the variational GON, implicit_gon/step.py)."""
from __future__ import annotations

from typing import Any

import torch

from ..device import make_generator
from ..metrics import bits_per_dim, psnr_from_mse
from ..step import kl_standard_normal, nll_per_sample, per_sample
from .ae import ConvEncoder


def attach(model, cfg, meta) -> None:
    model.encoder = ConvEncoder(model, 2 * model.latent_dim)


def posterior(model, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar), each (B, K)."""
    return model.encoder(values).chunk(2, dim=1)


def draw(mu, logvar, generator=None) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + eps * torch.exp(0.5 * logvar)


def objective(model, batch, cfg, generator=None, beta=None):
    mu, logvar = posterior(model, batch.values)
    y = model.after_head(batch.coords, draw(mu, logvar, generator))  # (B, N, C)
    nll = nll_per_sample(y, batch.values, cfg.gon, batch.scale)  # (B,)
    kl = kl_standard_normal(mu, logvar)
    w = cfg.gon.beta if beta is None else beta
    return (nll + w * kl).mean(), {"recon": nll.mean(), "nll": nll.mean(), "kl": kl.mean()}


def encode(gon, batch) -> torch.Tensor:
    with torch.no_grad():
        return posterior(gon.model, batch.values)[0]


def evaluate(gon, signal, idx: torch.Tensor, batch_size: int) -> dict[str, Any]:
    """sse and psnr of the posterior mean's reconstruction; bits_per_dim, the negative ELBO with one seeded draw."""
    gon.model.eval()
    gen = make_generator(0, gon.device)
    sse, psnr, bpd = [], [], []
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            b = signal.full(idx[s:s + batch_size], gon.device)
            mu, logvar = posterior(gon.model, b.values)
            err = per_sample((gon.model.after_head(b.coords, mu) - b.values).square())
            nll = nll_per_sample(gon.model.after_head(b.coords, draw(mu, logvar, gen)), b.values, gon.cfg.gon)
            sse.append(err.cpu())
            psnr.append(psnr_from_mse(err / b.values[0].numel()).cpu())
            bpd.append(bits_per_dim(nll + kl_standard_normal(mu, logvar), b.values[0].numel()).cpu())
    return {"n": len(idx), "sse": torch.cat(sse).mean().item(), "psnr": torch.cat(psnr).mean().item(),
            "bits_per_dim": torch.cat(bpd).mean().item()}
