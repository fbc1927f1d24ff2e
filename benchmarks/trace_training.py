"""Per-step internals of an image GON's training, to see a divergence coming: one JSON line per step.

    python benchmarks/trace_training.py --dataset celeba --data-dir DIR --out trace.jsonl [--steps N]
                                        [--seconds S] [--set section.key=value ...]

The same steps as `fit` (batches, coordinate subsets and learning-rate schedule from the same seeds), no checkpoints.
Each line: loss and its mean per value (mse), the gradient norm of F (gn; and of the latent weights W_z, gWz), the
mean latent norm |z|, the largest and RMS latent term of the first sine's argument (zpre, zpre_rms: w0 W_z z), the
largest coordinate term (cpre), |W_z|, the largest entry of Adam's second moment (vmax), the largest argument of
each hidden sine (h0, h1, ...). Ends with the held-out and training PSNR. A diagnostic, not a test.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from common import positive, run_benchmark
from implicit_gon import schedule
from implicit_gon.api import GON
from implicit_gon.config import resolve
from implicit_gon.step import gon_latents, outer_loss
from implicit_gon.train import batch_indices, evaluate, make_optimizer, step_generator
from signals import image_signal


def hidden_ranges(model) -> dict[str, float]:
    """Hooks recording the largest |w0 (W x + b)| of each hidden sine over a step; returns the dict they fill."""
    seen: dict[str, float] = {}
    for i, layer in enumerate(model.body):
        def hook(mod, inp, out, name=f"h{i}", w0=layer.w0):
            seen[name] = max(seen.get(name, 0.0), (w0 * out.detach()).abs().max().item())
        layer.linear.register_forward_hook(hook)
    return seen


def one_step(gon: GON, opt, batch) -> dict[str, float]:
    """One training step of the plain reconstruction objective, returning what it measured."""
    m, gc = gon.model, gon.cfg
    z = gon_latents(m, batch.coords, batch.values, gc.gon, batch.scale)  # (B, K)
    zpre = m.input.pre_latent(z).detach()  # (B, H)
    loss, _ = outer_loss(m, z, batch.coords, batch.values, gc.gon, batch.scale)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    clip = gc.train.grad_clip if gc.train.grad_clip > 0 else math.inf
    gn = torch.nn.utils.clip_grad_norm_(m.parameters(), clip).item()  # the norm before clipping
    gwz = m.input.latent.weight.grad.norm().item()
    opt.step()
    return {"loss": loss.item(), "mse": loss.item() / batch.values[0].numel() / batch.scale, "gn": gn, "gWz": gwz,
            "z": z.detach().norm(dim=1).mean().item(), "zpre": zpre.abs().max().item(),
            "zpre_rms": zpre.square().mean().sqrt().item(),
            "cpre": m.input.pre_coords(batch.coords).detach().abs().max().item(),
            "Wz": m.input.latent.weight.norm().item(),
            "vmax": max(s["exp_avg_sq"].max().item() for s in opt.state.values())}


def trace(cfg, train, out, seconds: float | None) -> GON:
    tc = cfg.train
    torch.manual_seed(tc.seed)
    gon = GON(cfg, {**train.meta(), "coord_dim": train.coord_dim, "out_dim": train.out_dim}, "cpu")
    opt, seen = make_optimizer(gon.model, tc), hidden_ranges(gon.model)
    base, bs, t0 = [g["lr"] for g in opt.param_groups], min(tc.batch_size, len(train)), time.perf_counter()
    extra = {"stratified": True} if tc.sampling == "stratified" else {}
    for step in range(tc.steps):
        schedule.set_lr(opt, base, schedule.lr_factor(tc, step, schedule.progress(tc, step, time.perf_counter() - t0)))
        idx = batch_indices(len(train), bs, tc.seed, step)
        batch = train.batch(idx, tc.points, step_generator(tc.seed, step, "cpu"), "cpu", **extra)
        gon.model.train()
        seen.clear()
        row = {"step": step, **one_step(gon, opt, batch), "lr": opt.param_groups[0]["lr"],
               "t": time.perf_counter() - t0, **seen}
        out.write(json.dumps(row) + "\n")
        out.flush()
        gon.step = step + 1
        if not math.isfinite(row["loss"]) or (seconds and row["t"] > seconds):
            break
    return gon


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="celeba")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=positive(int), default=None)
    ap.add_argument("--seconds", type=positive(float), default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    cfg = resolve("images", args.dataset, None, {"data.data_dir": str(args.data_dir), "train.steps": args.steps},
                  args.sets)
    train = image_signal(cfg.data, "train", progress=False)
    test = image_signal(cfg.data, "test", progress=False, notes=False)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tmp.open("w") as out:
        gon = trace(cfg, train, out, args.seconds)
        out.write(json.dumps({"final": True, "step": gon.step, "val_psnr": evaluate(gon, test)["psnr"],
                              "train_psnr": evaluate(gon, train)["psnr"]}) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({gon.step} steps)")


if __name__ == "__main__":
    run_benchmark(main)
