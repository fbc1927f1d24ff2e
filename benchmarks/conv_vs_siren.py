"""How fast a conv GON and an implicit (SIREN) GON reach a held-out SSE on MNIST: training seconds (validation
excluded from the clock) until the held-out summed squared error per image first falls to each threshold.

Both train with the library's own objective and Adam on the 9,000 / 1,000 split of MNIST's t10k file; the conv
GON with model.decoder conv (train.points 1, --conv-lr), the SIREN with the shipped mnist config (points 0.25,
lr 1e-4). Every --val-every steps the first --val-samples held-out digits are encoded in one step and scored
(off the clock). Wall-clock seconds on a shared CPU are indicative, not exact.

    python benchmarks/conv_vs_siren.py [--data-dir DIR] [--conv-steps 300] [--siren-steps 1500] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import add_data_dir, data_dir


def train_curve(flags: dict, steps: int, val_every: int, val_samples: int, data) -> list[tuple[int, float, float]]:
    """[(step, training seconds so far, held-out sse)] of one run."""
    from implicit_gon import GON
    from implicit_gon.config import resolve
    from implicit_gon.train import batch_indices, evaluate, make_optimizer, step_generator
    from implicit_gon.tasks import objective
    from signals import task_signal

    cfg = resolve("images", "mnist", None, {"data.data_dir": str(data), **flags})
    train = task_signal(cfg.data, "reconstruct", "train", progress=False, notes=False)
    test = task_signal(cfg.data, "reconstruct", "test", progress=False, notes=False)
    torch.manual_seed(cfg.train.seed)
    gon = GON(cfg, {**train.meta(), "coord_dim": 2, "out_dim": train.out_dim}, "cpu")
    opt = make_optimizer(gon.model, cfg.train)
    clock, out = 0.0, []
    for step in range(steps):
        t0 = time.perf_counter()
        gon.model.train()
        idx = batch_indices(len(train), cfg.train.batch_size, cfg.train.seed, step)
        batch = train.batch(idx, cfg.train.points, step_generator(cfg.train.seed, step, "cpu"), "cpu")
        loss, _ = objective(gon.model, batch, cfg, step_generator(cfg.train.seed, step, "cpu"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clock += time.perf_counter() - t0
        if (step + 1) % val_every == 0:
            sse = evaluate(gon, test, torch.arange(val_samples), 64)["sse"]
            out.append((step + 1, clock, sse))
    return out


def first_reach(curve, threshold: float):
    return next(((s, t) for s, t, v in curve if v <= threshold), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir(ap)
    ap.add_argument("--conv-steps", type=int, default=300)
    ap.add_argument("--siren-steps", type=int, default=1500)
    ap.add_argument("--conv-lr", type=float, default=1e-3)
    ap.add_argument("--val-every", type=int, default=25)
    ap.add_argument("--val-samples", type=int, default=256)
    ap.add_argument("--thresholds", default="40,30,20,15", help="held-out SSE levels, comma-separated")
    ap.add_argument("--json", default=None, help="also write the curves and times here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = data_dir(a.data_dir)
    data = data / "mnist" if (data / "mnist").is_dir() else data
    curves = {"conv": train_curve({"model.decoder": "conv", "train.points": 1.0, "train.lr": a.conv_lr},
                                  a.conv_steps, a.val_every, a.val_samples, data),
              "siren": train_curve({}, a.siren_steps, a.val_every, a.val_samples, data)}
    levels = [float(x) for x in a.thresholds.split(",")]
    print(f"{'held-out SSE':>13} | {'conv GON: step, s':>18} | {'SIREN GON: step, s':>19}")
    for lv in levels:
        cells = []
        for k in ("conv", "siren"):
            hit = first_reach(curves[k], lv)
            cells.append("not reached" if hit is None else f"{hit[0]}, {hit[1]:.1f}")
        print(f"{lv:>13g} | {cells[0]:>18} | {cells[1]:>19}")
    for k, c in curves.items():
        s, t, v = c[-1]
        print(f"{k}: {s} steps in {t:.1f} s of training, final held-out SSE {v:.3g} ({s / t:.1f} steps/s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"curves": curves, "thresholds": levels, "args": {k: str(v) for k, v in vars(a).items()}}, f,
                      indent=1)


if __name__ == "__main__":
    from implicit_gon.errors import GONError
    try:
        main()
    except GONError as e:
        raise SystemExit(f"error: {e}")
