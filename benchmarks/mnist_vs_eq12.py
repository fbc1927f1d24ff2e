"""Held-out PSNR after the same wall-clock time: the engine with configs/images/mnist.yaml vs Eq. 12.

    python benchmarks/mnist_vs_eq12.py --seconds 600 [--data-dir DIR]

Both train the same model (4 sine layers of 256, latent 32) on the same 9,000 real MNIST digits, batch 64,
Adam 1e-4, for the same time; both are then evaluated on the same 1,000 held-out digits, each latent found in one
gradient step on the full grid (Eq. 12 at its training scale, 1/64 per latent, since its latents depend on the
batch size it averages over: every held-out batch is scored at that scale, the last short one included).
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from common import add_data_dir, mnist_split, run_benchmark
from eq12 import ConcatSiren, eq12_loss
from implicit_gon import GON
from implicit_gon.config import resolve
from implicit_gon.train import batch_indices, evaluate, step_generator
from implicit_gon.step import gon_objective
from signals import ImageSignal


def train_engine(sig, seconds, cfg):
    torch.manual_seed(0)
    gon = GON(cfg, {**sig.meta(), "coord_dim": 2, "out_dim": 1}, "cpu")
    opt = torch.optim.Adam(gon.model.parameters(), cfg.train.lr)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        b = sig.batch(batch_indices(len(sig), 64, 0, step), cfg.train.points, step_generator(0, step, "cpu"), "cpu")
        opt.zero_grad()
        gon_objective(gon.model, b.coords, b.values, cfg.gon, b.scale)[0].backward()
        opt.step()
        step += 1
    return gon, step


def train_eq12(sig, seconds, cfg):
    torch.manual_seed(0)
    model = ConcatSiren(2, 1, cfg.model)
    opt = torch.optim.Adam(model.parameters(), cfg.train.lr)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        b = sig.full(batch_indices(len(sig), TRAIN_BATCH, 0, step), "cpu")
        opt.zero_grad()
        eq12_loss(model, b.coords, b.values).backward()
        opt.step()
        step += 1
    return model, step


TRAIN_BATCH = 64
"""Eq. 12 averages its inner loss over the batch, so each latent is the step scaled by 1 / batch size: it is
scored at the scale it was trained at, 1/64, for every held-out batch (1,000 = 15 x 64 + 40: a `.mean()` would give
the last 40 digits 1/40)."""


def eval_eq12(model, sig):
    psnr = []
    for s in range(0, len(sig), TRAIN_BATCH):
        b = sig.full(torch.arange(s, min(s + TRAIN_BATCH, len(sig))), "cpu")
        z0 = torch.zeros(len(b.values), 32, requires_grad=True)
        inner = ((model(b.coords, z0) - b.values) ** 2).sum() / TRAIN_BATCH  # the training scale, any batch length
        z = -torch.autograd.grad(inner, z0)[0]
        with torch.no_grad():
            mse = ((model(b.coords, z) - b.values) ** 2).mean((1, 2))
        psnr.append(10 * torch.log10(1 / mse))
    return torch.cat(psnr).mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600)
    add_data_dir(ap)
    args = ap.parse_args()
    cfg = resolve("images", "mnist", None, {"train.device": "cpu"})
    train, test = ImageSignal(mnist_split("train", args.data_dir)), ImageSignal(mnist_split("test", args.data_dir))
    gon, n_engine = train_engine(train, args.seconds, cfg)
    engine = evaluate(gon, test)
    model, n_eq12 = train_eq12(train, args.seconds, cfg)
    eq12 = eval_eq12(model, test)
    out = {"seconds": args.seconds, "engine_steps": n_engine, "engine_psnr": engine["psnr"],
           "eq12_steps": n_eq12, "eq12_psnr": eq12, "gain_db": engine["psnr"] - eq12}
    print(json.dumps(out))


if __name__ == "__main__":
    run_benchmark(main)
