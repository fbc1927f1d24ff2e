"""The outer loss of each task (paper Sec. 3.5): the loss whose gradient at the origin is the latent (inner) and
the loss F is trained on (outer) need not be the same.

- `reconstruct`: the paper's GON, the outer loss is the inner one (implicit_gon/step.py: gon_objective).
- `classify`, `joint`: a linear layer and softmax on the one-step latent, cross-entropy outer loss (Eq. 13), alone
  or added to the reconstruction (classify.py).
- `convert`: the step encodes a view of the signal, the outer loss is the whole signal (convert.py).

A task is an objective over a Batch, optional heads on the model, the loss inside the step and its held-out scores.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import GONError
from ..step import LossFn, gon_objective
from . import classify, convert

LABELLED = ("classify", "joint")


def objective(model, batch, cfg, generator: torch.Generator | None = None, beta: float | None = None):
    """(loss, parts) of one training batch for cfg.gon.task."""
    task = cfg.gon.task
    if cfg.method.name != "gon":  # a baseline's own way to latents (implicit_gon/methods)
        from .. import methods
        return methods.objective(model, batch, cfg, generator, beta)
    if task == "reconstruct":
        q = batch.query
        query = None if q is None else (q.coords, q.values, q.scale)
        return gon_objective(model, batch.coords, batch.values, cfg.gon, batch.scale, generator, beta, query)
    if task == "classify":
        return classify.objective(model, batch, cfg.gon)
    if task == "joint":
        return classify.joint_objective(model, batch, cfg.gon, generator, beta)
    if task == "convert":
        return convert.objective(model, batch, cfg, generator, beta)
    raise GONError(f"gon.task {task!r}: choose reconstruct, classify, joint or convert")


def inner_loss(model, cfg) -> LossFn | None:
    """The loss inside the step when the task changes it (None: the configured one)."""
    return convert.inner_loss(model, cfg) if cfg.gon.task == "convert" else None


def attach_heads(model, cfg, meta: dict[str, Any]) -> None:
    """Add the task's layers to F's module (so they are trained, saved and loaded with it)."""
    if cfg.gon.task in LABELLED:
        if not meta.get("classes"):
            raise GONError(f"gon.task {cfg.gon.task}: the run's data has no class labels")
        classify.attach(model, len(meta["classes"]))


def evaluate(gon, signal, idx: torch.Tensor, batch_size: int) -> dict[str, Any]:
    """Held-out scores of a classify, joint or convert run."""
    if gon.cfg.gon.task in LABELLED:
        return classify.evaluate(gon, signal, idx, batch_size, recon=gon.cfg.gon.task == "joint")
    return convert.evaluate(gon, signal, idx, batch_size)
