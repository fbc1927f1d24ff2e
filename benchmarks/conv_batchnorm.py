"""BatchNorm inside the gradient step of a conv GON: the authors' scheme (F in training mode for both passes, so
the step sees batch statistics) against this project's (the step on running statistics, conv.step_mode), each
trained the same way and encoded two ways: in eval mode (running statistics: batch-independent latents, what
`encode` and `eval` do), and in training mode for one batch of 64 (batch statistics, as the authors' script).
Held-out SSE per image on MNIST's 9,000 / 1,000 split.

The conv GON trains with the MNIST config's `conv:` section (the authors' script: Adam 1e-4, constant), or --lr.

    python benchmarks/conv_batchnorm.py [--data-dir DIR] [--steps 1000] [--lr RATE]
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile

import torch

from common import add_data_dir, data_dir, positive


def encode_with_batch_statistics(gon, b, cfg):
    """Latents of batch b as the authors' script computes them: every BatchNorm on this batch's statistics."""
    from implicit_gon import step
    gon.model.train()
    real, step.step_mode = step.step_mode, (lambda model: contextlib.nullcontext())
    try:
        with torch.enable_grad():
            z = step.gon_latents(gon.model, b.coords, b.values, cfg.gon, 1.0, create_graph=False)
        with torch.no_grad():
            return ((gon.model(b.coords, z)[0] - b.values) ** 2).flatten(1).sum(1).mean().item()
    finally:
        step.step_mode = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_dir(ap)
    ap.add_argument("--steps", type=positive(int), default=1000, help="1,000: the authors' script's budget")
    ap.add_argument("--lr", type=positive(float), default=None, help="Adam rate (default: the config's conv section)")
    ap.add_argument("--val-samples", type=positive(int), default=256, help="held-out digits scored (at most 1,000)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from implicit_gon import step
    from implicit_gon.config import resolve
    from implicit_gon.train import evaluate, fit
    from signals import task_signal
    data = data_dir(a.data_dir)
    data = data / "mnist" if (data / "mnist").is_dir() else data
    cfg = resolve("images", "mnist", None, {"data.data_dir": str(data), "train.steps": a.steps, "train.lr": a.lr,
                                            "model.decoder": "conv", "train.ckpt_every": a.steps})
    train = task_signal(cfg.data, "reconstruct", "train", progress=False, notes=False)
    test = task_signal(cfg.data, "reconstruct", "test", progress=False, notes=False)
    print(f"{'trained with':>38} | eval-mode encoding | batch-statistics encoding (64)")
    for scheme in ("running statistics in the step (ours)", "batch statistics in the step (authors)"):
        real = step.step_mode
        if "authors" in scheme:
            step.step_mode = lambda model: contextlib.nullcontext()
        try:
            with tempfile.TemporaryDirectory() as run:
                gon = fit(train, cfg, run, None, progress=False)
        finally:
            step.step_mode = real
        ev = evaluate(gon, test, torch.arange(min(a.val_samples, len(test))))["sse"]
        bs = encode_with_batch_statistics(gon, test.full(torch.arange(64), "cpu"), cfg)
        print(f"{scheme:>38} | {ev:18.2f} | {bs:.2f}")


if __name__ == "__main__":
    from common import run_benchmark
    run_benchmark(main)
