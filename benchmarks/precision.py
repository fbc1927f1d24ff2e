"""What bf16 / fp16 autocast does to the training step's speed and to held-out PSNR on MNIST.

    python benchmarks/precision.py [--data-dir DIR] [--steps 1000] [--rounds 10] [--threads 2]

Speed: the precisions' steps are interleaved in rounds on the same batch, so a machine whose load drifts slows all
of them alike; the ratio to fp32 is what to read. Quality: the default MNIST config trained for the same number of
steps in each precision (same seed and batches), then scored in float32 on the 1,000 held-out digits.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

import common  # noqa: F401  (puts the repository on sys.path)
from implicit_gon.config import resolve
from implicit_gon.precision import Precision
from implicit_gon.siren import Siren
from implicit_gon.step import gon_objective
from implicit_gon.train import evaluate, fit
from signals import image_signal

PRECISIONS = ("fp32", "bf16", "fp16")


def speed(cfg, sig, rounds: int, per_round: int = 5) -> dict[str, float]:
    """Steps per second of each precision, interleaved round by round on one batch."""
    gen = torch.Generator().manual_seed(0)
    batch = sig.batch(torch.arange(cfg.train.batch_size), cfg.train.points, gen, "cpu")
    torch.manual_seed(0)
    model = Siren(2, 1, cfg.model)
    opt = torch.optim.Adam(model.parameters(), cfg.train.lr)
    spent = dict.fromkeys(PRECISIONS, 0.0)
    for r in range(rounds + 1):
        for name in PRECISIONS:
            amp = Precision(name, "cpu")
            t0 = time.perf_counter()
            for _ in range(per_round):
                with amp.autocast():
                    loss = gon_objective(model, batch.coords, batch.values, cfg.gon, batch.scale)[0]
                opt.zero_grad()
                amp.backward(loss)
                amp.step(opt)
            if r:  # round 0 warms up
                spent[name] += time.perf_counter() - t0
    return {k: rounds * per_round / v for k, v in spent.items()}


def quality(cfg_for, train, test, steps: int, names) -> dict[str, float]:
    out = {}
    for name in names:
        cfg = cfg_for(name, steps)
        with tempfile.TemporaryDirectory() as run:
            gon = fit(train, cfg, run, progress=False)
            out[name] = evaluate(gon, test)["psnr"]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("IMPLICIT_GON_DATA"),
                    help="Folder holding mnist/ (default: $IMPLICIT_GON_DATA).")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quality", default="fp32,bf16",
                    help="Precisions to train for the PSNR comparison (fp16 has no fast path on most CPUs).")
    args = ap.parse_args()
    if not args.data_dir or not (Path(args.data_dir) / "mnist").is_dir():
        raise SystemExit("error: give --data-dir DIR (or $IMPLICIT_GON_DATA) holding mnist/ with the IDX files")
    if args.threads:
        torch.set_num_threads(args.threads)

    def cfg_for(precision, steps):
        return resolve("images", "mnist", None, {"data.data_dir": str(Path(args.data_dir) / "mnist"),
                                                 "train.steps": steps, "train.device": "cpu",
                                                 "train.precision": precision})
    cfg = cfg_for("fp32", args.steps)
    train, test = image_signal(cfg.data, "train", progress=False), image_signal(cfg.data, "test", progress=False)
    rates = speed(cfg, train, args.rounds)
    psnr = quality(cfg_for, train, test, args.steps, args.quality.split(","))
    print(f"MNIST 9,000 / 1,000, default config, {args.steps} steps, threads {torch.get_num_threads()}, "
          f"CPU bf16: {'avx512_bf16' in Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else '?'}")
    print(f"{'precision':<10}{'steps/s':>9}{'vs fp32':>9}{'held-out PSNR':>15}{'vs fp32':>9}")
    for name in PRECISIONS:
        q = f"{psnr[name]:13.2f} dB{psnr[name] - psnr['fp32']:+8.2f}" if name in psnr else f"{'-':>16}"
        print(f"{name:<10}{rates[name]:9.2f}{rates[name] / rates['fp32']:8.2f}x{q}")


if __name__ == "__main__":
    main()
