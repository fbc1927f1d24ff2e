"""Held-out SSE per image of fitted conv-GON runs scored two ways: as `eval` does (every BatchNorm on its running
statistics) and with only the outer pass on the held-out batch's own statistics (the step still on running ones,
as in training; the running statistics are not updated). A run whose training loss is far below its `eval` SSE on
running statistics but not on batch statistics is let down by its running statistics, not overfitted.

    python benchmarks/outer_batch_stats.py RUN [RUN ...] [--n 1000] [--batch 250]
"""
from __future__ import annotations

import argparse
import sys

import torch

from common import positive


def held_out_sse(gon, signal, n: int, batch: int, batch_stats: bool) -> float:
    from implicit_gon.step import gon_latents, per_sample
    sse = []
    for i in range(0, n, batch):
        b = signal.full(torch.arange(i, min(i + batch, n)), gon.device)
        gon.model.eval()
        with torch.enable_grad():  # the step, on running statistics (conv.step_mode) either way
            z = gon_latents(gon.model, b.coords, b.values, gon.cfg.gon, b.scale, create_graph=False).detach()
        if batch_stats:
            for m in gon.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.train()
                    m.momentum = 0.0  # normalise by the batch's statistics, leave the running ones as they are
        with torch.no_grad():
            sse.append(per_sample((gon.model(b.coords, z)[0] - b.values).square()).cpu())
    return torch.cat(sse).mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories of conv-GON fits")
    ap.add_argument("--n", type=positive(int), default=1000, help="held-out images scored (the first N)")
    ap.add_argument("--batch", type=positive(int), default=250, help="images per outer pass (batch statistics)")
    args = ap.parse_args()
    from implicit_gon import GON, GONError
    from signals import image_signal
    try:
        report(args, GON, image_signal)
    except GONError as e:
        sys.exit(f"error: {e}")


def report(args, GON, image_signal) -> None:
    rows = []
    for run in args.runs:
        gon = GON.load(run, "cpu")
        signal = image_signal(gon.cfg.data, "test")
        n = min(args.n, len(signal))
        running, batch = (held_out_sse(gon, signal, n, args.batch, s) for s in (False, True))
        rows.append(f"| {run} | {running:.3f} | {batch:.3f} |")
    print("| run | held-out SSE, running statistics (eval) | outer pass on batch statistics |\n|---|---|---|")
    print("\n".join(rows))

if __name__ == "__main__":
    main()
