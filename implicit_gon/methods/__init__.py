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

from ..registry import MethodSpec, implementation, register_method
from . import ae, glo, vae

# the rows of the paper's Table 1 and 2, in its order: the GON, its ablations and the baselines
for _spec in (MethodSpec("gon", table=1), MethodSpec("ae", {"method.name": "ae"}, ("conv",), table=1,
                                                      implementation=ae, whole_images=True),
              MethodSpec("tied-ae", {"method.name": "tied-ae"}, ("conv",), table=1, implementation=ae,
                         whole_images=True),
              MethodSpec("detach", {"gon.detach": True}, table=1),
              MethodSpec("gon-10", {"gon.inner_steps": 10}, table=1),
              MethodSpec("detach-10", {"gon.detach": True, "gon.inner_steps": 10}, table=1),
              MethodSpec("glo", {"method.name": "glo"}, table=1, implementation=glo),
              MethodSpec("vgon", {"model.variational": True}, variational=True, table=2),
              MethodSpec("vae", {"method.name": "vae"}, ("conv",), variational=True, table=2, implementation=vae,
                         whole_images=True)):
    register_method(_spec)


class _Modules:
    """method.name -> its implementation, read from the registry (a method registered later is found too)."""

    def get(self, name, default=None):
        return implementation(name) or default

    def __contains__(self, name) -> bool:
        return implementation(name) is not None

    def __getitem__(self, name):
        found = implementation(name)
        if found is None:
            raise KeyError(name)
        return found


MODULES = _Modules()


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
    own = getattr(MODULES.get(gon.cfg.method.name), "training_latents", None)
    return None if own is None else own(gon, idx)


def evaluate(gon, signal, idx: torch.Tensor, batch_size: int) -> dict[str, Any] | None:
    """A method's own held-out scores (vae: bits/dim from its posterior), or None for the usual ones."""
    own = getattr(MODULES.get(gon.cfg.method.name), "evaluate", None)
    return None if own is None else own(gon, signal, idx, batch_size)
