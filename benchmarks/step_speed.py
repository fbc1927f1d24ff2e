"""Training-step speed: the straightforward Eq. 12 implementation vs the engine, same model and batch, one run.

    python benchmarks/step_speed.py [--data-dir DIR] [--batch-size 64] [--threads N] [--device cpu]

(a) Eq. 12 as written: latent repeated per coordinate and concatenated, autograd double backward, full grid.
(b) the engine (split first layer, shared-origin Jacobian), on the full grid and on 25% of coordinates.
(c) the floor: one forward and backward of F over the same points with a fixed latent (no gradient step), what any
    training step of a decoder this size must at least cost; "of floor" is the engine's speed as a fraction of it.
The process keeps freed memory for reuse (implicit_gon/host.py) for every row, the baseline included; --plain-malloc
measures without it.
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
    ap.add_argument("--plain-malloc", action="store_true", help="leave glibc's allocator settings alone")
    add_data_dir(ap)
    args = ap.parse_args()
    if not args.plain_malloc:
        from implicit_gon.host import keep_freed_memory
        keep_freed_memory()
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

    z = torch.randn(args.batch_size, mc.latent_dim, generator=gen).to(dev) * 0.1

    def step_floor(points):  # F forward and backward over the batch's points, the latent given
        b = sig.batch(idx, points, gen, dev)
        opt_e.zero_grad()
        ((engine(b.coords, z)[0] - b.values) ** 2).sum().backward()
        opt_e.step()
        sync()

    rows = [("eq12, full grid", steps_per_second(step_naive, args.min_time), None)]
    for points, label in ((1.0, "full grid"), (0.25, "25% of coordinates")):
        rows.append((f"engine, {label}", steps_per_second(lambda: step_engine(points), args.min_time), points))
        rows.append((f"floor, {label}", steps_per_second(lambda: step_floor(points), args.min_time), points))
    print(f"device {dev}, threads {torch.get_num_threads()}, batch {args.batch_size}, 28x28 MNIST, "
          f"SIREN {mc.layers}x{mc.hidden}, latent {mc.latent_dim}, allocator "
          f"{'glibc defaults' if args.plain_malloc else 'keeps freed memory'}")
    base, floor = rows[0][1], {p: r for name, r, p in rows if name.startswith("floor")}
    for name, rate, points in rows:
        of_floor = f"   {rate / floor[points]:5.0%} of floor" if name.startswith("engine") else ""
        print(f"{name:<30} {rate:8.3f} steps/s   {rate / base:6.2f}x{of_floor}")


if __name__ == "__main__":
    run_benchmark(main)
