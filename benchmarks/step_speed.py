"""Training-step speed: the authors' Eq. 12 (benchmarks/eq12.py) vs the engine, same model and batch, one run;
and what fraction of the machine's matrix-multiply rate each step reaches.

    python benchmarks/step_speed.py [--data-dir DIR] [--batch-size 64] [--threads N] [--device cpu] [--no-bf16]

(a) Eq. 12 as the authors wrote it: latent repeated per coordinate and concatenated, autograd double backward,
    full grid.
(b) the engine (split first layer, shared-origin Jacobian), on the full grid and on 25% of coordinates.
(c) the floor: one forward and backward of F over the same points with a fixed latent (no gradient step), what any
    training step of a decoder this size must at least cost; "of floor" is the engine's speed as a fraction of it.
(d) the engine and the floor under bf16 autocast (`--precision bf16`), full grid.
For each row: its matrix-multiply GFLOP per step (counted as benchmarks/flops.py says: every product the step
dispatches, outer pass, gradient step and backward), the GFLOP/s it achieves, and that as a fraction of plain
torch.mm running the same products in the same dtypes ("of mm"); the last lines give a large square torch.mm in
fp32 and bf16, the machine's headline rate. The process keeps freed memory for reuse (implicit_gon/host.py) for
every row, the baseline included; --plain-malloc measures without it.
--compile measures torch.compile instead (eager against compiled, compile time apart): benchmarks/compile_step.py.
"""
from __future__ import annotations

import argparse

import torch

import compile_step
import flops
from common import add_data_dir, mnist_split, positive, run_benchmark, steps_per_second
from eq12 import ConcatSiren, authors_grid, eq12_loss
from implicit_gon.config import GONConfig, ModelConfig
from implicit_gon.device import resolve_device
from implicit_gon.precision import Precision
from implicit_gon.siren import Siren
from implicit_gon.step import gon_objective
from signals import ImageSignal


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-size", type=positive(int), default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-time", type=positive(float), default=10.0)
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 rows")
    ap.add_argument("--plain-malloc", action="store_true", help="leave glibc's allocator settings alone")
    ap.add_argument("--compile", action="store_true", help="only eager against torch.compile (compile_step.py)")
    add_data_dir(ap)
    return ap.parse_args()


def make_steps(args, dev):
    """The rows' step functions: name -> (step, the floor it is measured against)."""
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
    z = torch.randn(args.batch_size, mc.latent_dim, generator=gen).to(dev) * 0.1
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step_naive():
        opt_n.zero_grad()
        eq12_loss(naive, authors_grid(sig.res).to(dev), full.values).backward()
        opt_n.step()
        sync()

    def step(points, precision, floor):
        prec = Precision(precision, dev)
        def run():
            b = sig.batch(idx, points, gen, dev)
            opt_e.zero_grad()
            with prec.autocast():
                loss = ((engine(b.coords, z)[0] - b.values) ** 2).sum() if floor else \
                    gon_objective(engine, b.coords, b.values, GONConfig(), b.scale)[0]
            loss.backward()
            opt_e.step()
            sync()
        return run

    rows = {"eq12, full grid": (step_naive, None)}
    for points, label in ((1.0, "full grid"), (0.25, "25% of coordinates")):
        rows[f"engine, {label}"] = (step(points, "fp32", False), points)
        rows[f"floor, {label}"] = (step(points, "fp32", True), points)
    if not args.no_bf16:
        rows["engine, full grid, bf16"] = (step(1.0, "bf16", False), "bf16")
        rows["floor, full grid, bf16"] = (step(1.0, "bf16", True), "bf16")
    return rows, mc


def main():
    args = parse()
    if not args.plain_malloc:
        from implicit_gon.host import keep_freed_memory
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    if args.compile:
        compile_step.compare(ImageSignal(mnist_split("train", args.data_dir)), args.batch_size, args.min_time, dev)
        return
    steps, mc = make_steps(args, dev)
    rows = []
    for name, (fn, key) in steps.items():
        log = flops.count(fn)
        rate = steps_per_second(fn, args.min_time)
        rows.append((name, rate, key, log.flops, flops.mm_rate(log.shapes, dev, args.min_time / 4)))
    print(f"device {dev}, threads {torch.get_num_threads()}, batch {args.batch_size}, 28x28 MNIST, "
          f"SIREN {mc.layers}x{mc.hidden}, latent {mc.latent_dim}, allocator "
          f"{'glibc defaults' if args.plain_malloc else 'keeps freed memory'}")
    report(rows)
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))[:1 if args.no_bf16 else 2]:
        print(f"machine: torch.mm 2048x2048x2048 {name}: {flops.square_peak(dtype, dev) / 1e9:8.1f} GFLOP/s")


def report(rows) -> None:
    """One line per row: speed, against eq12 and the floor, and its matrix-multiply GFLOP/s against torch.mm's."""
    base, floor = rows[0][1], {key: r for name, r, key, _, _ in rows if name.startswith("floor")}
    print(f"{'':<30} {'steps/s':>8} {'vs eq12':>8} {'of floor':>9} {'GFLOP/step':>11} {'GFLOP/s':>8} "
          f"{'mm GFLOP/s':>11} {'of mm':>6}")
    for name, rate, key, n_flops, mm in rows:
        of_floor = f"{rate / floor[key]:9.0%}" if name.startswith("engine") and key in floor else " " * 9
        achieved = n_flops * rate
        print(f"{name:<30} {rate:8.3f} {rate / base:7.2f}x {of_floor} {n_flops / 1e9:11.3f} "
              f"{achieved / 1e9:8.1f} {mm / 1e9:11.1f} {achieved / mm:6.0%}")


if __name__ == "__main__":
    run_benchmark(main)
