"""How fast a conv GON and an implicit (SIREN) GON reach a held-out SSE on MNIST: training seconds until the
held-out summed squared error per image first falls to each threshold.

Both are trained by `fit` itself with the shipped MNIST config: the SIREN with its own settings (4 x 256, points
0.25 stratified, Adam 3e-4 with warm-up and cosine decay over --siren-steps), the conv GON with the config's `conv:`
section (the authors' conv script: Adam 1e-4, constant, every pixel) or each --conv-lr given. The weights are copied
every --val-every steps and scored afterwards (the first --val-samples held-out digits, one step each), so
validation costs neither clock. 9,000 / 1,000 split of MNIST's t10k file, one thread; run it on a quiet machine.

    python benchmarks/conv_vs_siren.py [--data-dir DIR] [--conv-steps 3000] [--siren-steps 1350]
                                       [--conv-lr 1e-4,1e-3] [--json OUT]
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch

from common import add_data_dir, data_dir, positive, positive_list, writable_file


def train_curve(flags: dict, steps: int, val_every: int, val_samples: int, data) -> list[tuple[int, float, float]]:
    """[(step, training seconds so far, held-out sse)] of one run of `fit`."""
    from implicit_gon.config import resolve
    from implicit_gon.train import evaluate, fit
    from signals import task_signal

    cfg = resolve("images", "mnist", None, {"data.data_dir": str(data), "train.steps": steps,
                                            "train.ckpt_every": steps, "train.log_every": steps, **flags})
    train = task_signal(cfg.data, "reconstruct", "train", progress=False, notes=False)
    test = task_signal(cfg.data, "reconstruct", "test", progress=False, notes=False)
    snaps = []

    def snapshot(gon, seconds):
        if gon.step % val_every == 0:
            snaps.append((gon.step, seconds, copy.deepcopy(gon.model.state_dict())))

    with tempfile.TemporaryDirectory() as run:
        gon = fit(train, cfg, Path(run) / "run", progress=False, on_step=snapshot)
    out = []
    for step, seconds, state in snaps:
        gon.model.load_state_dict(state)
        out.append((step, seconds, evaluate(gon, test, torch.arange(min(val_samples, len(test))), 64)["sse"]))
    return out


def first_reach(curve, threshold: float):
    return next(((s, t) for s, t, v in curve if v <= threshold), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_dir(ap)
    ap.add_argument("--conv-steps", type=positive(int), default=3000)
    ap.add_argument("--siren-steps", type=positive(int), default=1350, help="1,350 steps: about 240 s on 2 cores")
    ap.add_argument("--conv-lr", type=positive_list(float), default=None,
                    help="comma-separated Adam rates of conv runs (default: the config's)")
    ap.add_argument("--val-every", type=positive(int), default=50)
    ap.add_argument("--val-samples", type=positive(int), default=256)
    ap.add_argument("--thresholds", type=positive_list(float), default=[40, 30, 20, 15, 10, 8],
                    help="held-out SSE levels, comma-separated")
    ap.add_argument("--json", type=writable_file, default=None, help="also write the curves and times here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = data_dir(a.data_dir)
    data = data / "mnist" if (data / "mnist").is_dir() else data
    rates = a.conv_lr or [None]
    if a.val_every > min(a.conv_steps, a.siren_steps):
        ap.error(f"--val-every {a.val_every}: more than a run's steps, so there would be no point to score")
    curves = {}
    for r in rates:
        name = "conv GON" + ("" if r is None else f" (lr {r:g})")
        curves[name] = train_curve({"model.decoder": "conv", **({} if r is None else {"train.lr": r})},
                                   a.conv_steps, a.val_every, a.val_samples, data)
    curves["SIREN GON"] = train_curve({}, a.siren_steps, a.val_every, a.val_samples, data)
    levels = a.thresholds
    print("| held-out SSE | " + " | ".join(f"{k}: step, training s" for k in curves) + " |")
    print("|---" * (len(curves) + 1) + "|")
    for lv in levels:
        cells = []
        for k in curves:
            hit = first_reach(curves[k], lv)
            cells.append("not reached" if hit is None else f"{hit[0]}, {hit[1]:.1f}")
        print(f"| {lv:g} | " + " | ".join(cells) + " |")
    for k, c in curves.items():
        s, t, v = c[-1]
        print(f"{k}: {s} steps in {t:.1f} s of training, final held-out SSE {v:.3g} ({s / t:.1f} steps/s)")
    if a.json:
        from implicit_gon.fsio import write_json
        write_json(a.json, {"curves": curves, "thresholds": levels,
                            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}})


if __name__ == "__main__":
    from common import run_benchmark
    run_benchmark(main)
