"""Training-step speed: the straightforward Eq. 12 implementation vs the engine, same model and batch, one run.

    python benchmarks/step_speed.py [--data-dir DIR] [--batch-size 64] [--threads N] [--device cpu]

(a) Eq. 12 as written: latent repeated per coordinate and concatenated, autograd double backward, full grid.
(b) the engine (split first layer, shared-origin Jacobian), on the full grid and on 25% of coordinates.
"""
from __future__ import annotations

import argparse

import torch

from common import add_data_dir, mnist_split, run_benchmark, steps_per_second
from eq12 import ConcatSiren, eq12_loss
from implicit_gon.config import GONConfig, ModelConfig
from implicit_gon.device import resolve_device
from implicit_gon.siren import Siren
from implicit_gon.step import gon_objective
from signals import ImageSignal


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-time", type=float, default=10.0)
    add_data_dir(ap)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    mc = ModelConfig()  # the paper's MNIST model: 4 sine layers of 256, latent 32
    sig = ImageSignal(mnist_split("train", args.data_dir))
    idx = torch.arange(args.batch_size)
    full = sig.full(idx, dev)
    torch.manual_seed(0)
    naive = ConcatSiren(2, 1, mc).to(dev)
    torch.manual_seed(0)
    engine = Siren(2, 1, mc).to(dev)
    opt_n, opt_e = torch.optim.Adam(naive.parameters(), 1e-4), torch.optim.Adam(engine.parameters(), 1e-4)
    gen = torch.Generator().manual_seed(0)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step_naive():
        opt_n.zero_grad()
        eq12_loss(naive, full.coords, full.values).backward()
        opt_n.step()
        sync()

    def step_engine(points):
        b = sig.batch(idx, points, gen, dev)
        opt_e.zero_grad()
        gon_objective(engine, b.coords, b.values, GONConfig(), b.scale)[0].backward()
        opt_e.step()
        sync()

    rows = [("eq12, full grid", steps_per_second(step_naive, args.min_time)),
            ("engine, full grid", steps_per_second(lambda: step_engine(1.0), args.min_time)),
            ("engine, 25% of coordinates", steps_per_second(lambda: step_engine(0.25), args.min_time))]
    print(f"device {dev}, threads {torch.get_num_threads()}, batch {args.batch_size}, 28x28 MNIST, "
          f"SIREN {mc.layers}x{mc.hidden}, latent {mc.latent_dim}")
    base = rows[0][1]
    for name, rate in rows:
        print(f"{name:<30} {rate:8.3f} steps/s   {rate / base:6.2f}x")


if __name__ == "__main__":
    run_benchmark(main)
