"""The baselines of the paper's Table 1 and 2 beside the GON (Bond-Taylor & Willcocks 2021, Sec. 4.1): each is a
way of finding latents for the same decoder F, trained on the same outer loss.

- `gon` (and its ablations `detach`, `gon-10`, `detach-10`: gon.detach, gon.inner_steps): the gradient step,
  implicit_gon/step.py; not a module here.
- `ae`, `tied-ae`: a conv encoder mirroring the conv decoder, its own weights or the decoder's (ae.py).
- `glo`: one learned latent per training image; unseen images are fitted by gradient descent (glo.py).
- `vae`: the ae encoder giving a mean and log-variance, trained on the ELBO (vae.py).

A method is what it attaches to F's module (so it is trained, saved and loaded with it), its objective, how it
encodes, and optionally its held-out scores.
"""
from __future__ import annotations

from typing import Any

import torch

from . import ae, glo, vae

MODULES = {"ae": ae, "tied-ae": ae, "glo": glo, "vae": vae}


def attach(model, cfg, meta: dict[str, Any]) -> None:
    """Add the method's own layers or parameters to F's module (nothing for gon)."""
    if cfg.method.name in MODULES:
        MODULES[cfg.method.name].attach(model, cfg, meta)


def objective(model, batch, cfg, generator: torch.Generator | None = None, beta: float | None = None):
    """(loss, parts) of one training batch."""
    return MODULES[cfg.method.name].objective(model, batch, cfg, generator, beta)


def encode(gon, batch) -> torch.Tensor:
    """Latents (B, K) of a batch on its full grid."""
    return MODULES[gon.cfg.method.name].encode(gon, batch)


def training_latents(gon, signal, idx) -> torch.Tensor | None:
    """The training latents a method has learned (glo), to fit the sampling Gaussian to; None: encode them."""
    if gon.cfg.method.name == "glo":
        return glo.training_latents(gon, idx)
    return None


def evaluate(gon, signal, idx: torch.Tensor, batch_size: int) -> dict[str, Any] | None:
    """A method's own held-out scores (vae: bits/dim from its posterior), or None for the usual ones."""
    own = getattr(MODULES.get(gon.cfg.method.name), "evaluate", None)
    return None if own is None else own(gon, signal, idx, batch_size)
