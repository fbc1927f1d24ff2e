"""Which tensors of one training step lose what under bf16 autocast: one batch, fp32 against bf16, no training.

    python benchmarks/bf16_errors.py [--run DIR] [--data-dir DIR] [--batch-size 64] [--points 0.25]

The model is a trained run's (`--run`, e.g. a short fp32 `fit` of the MNIST config) or a fresh one of the MNIST
config. On the same batch and the same pixels it computes, in float32 and under bf16 autocast (the engine's
`--precision bf16`: float32 master weights, the first layer and every sine argument in float32, the products in
bf16):
- the step's parts: r = dL/dF at the origin, m = sum_n r J (the Jacobian contraction, one einsum), the latent z;
- the outer loss, and the gradient of every parameter tensor through the step (second-order terms included):
  relative error ||g_bf16 - g_fp32|| / ||g_fp32||, cosine, and entries that are non-zero in fp32 but zero in bf16
  (underflow: what a loss scale would fix);
- the Adam update those gradients give (the first step's update, lr 3e-4: sign(g) for almost every entry), as
  the fraction of entries whose sign flips.
Rows "+ fp32 contraction" repeat the bf16 step with the contraction m = einsum(r, J) in float32, rows "step in
fp32" with the whole gradient-origin step in float32 and only the outer pass in bf16, rows "output layer fp32"
with F's last (linear) layer in float32 (candidate fixes).
Relative errors are what to read: 2^-8 = 0.4% is one bf16 rounding.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import common  # noqa: F401  (puts the repository on sys.path)
from common import add_data_dir, positive, run_benchmark, shared_root
from implicit_gon import step as step_mod
from implicit_gon.precision import Precision


def load(args):
    """(model, cfg, batch): the run's model or a fresh MNIST one, and one seeded batch of MNIST."""
    from implicit_gon.api import GON
    from implicit_gon.config import resolve
    from signals import image_signal
    if args.run:
        gon = GON.load(args.run, "cpu")
        cfg, model = gon.cfg, gon.model
    else:
        cfg = resolve("images", "mnist", None, {"data.data_dir": str(shared_root(args.data_dir) / "mnist")})
        torch.manual_seed(0)
        model = GON(cfg, {"coord_dim": 2, "out_dim": 1, "res": 28}, "cpu").model
    sig = image_signal(cfg.data, "test", progress=False)
    gen = torch.Generator().manual_seed(1)
    batch = sig.batch(torch.arange(args.batch_size), args.points, gen, "cpu", stratified=True)
    return model, cfg, batch


def one_step(model, cfg, batch, precision: str, fp32_contraction: bool = False,
             fp32_step: bool = False, fp32_out: bool = False) -> dict[str, torch.Tensor]:
    """The step's parts, the outer loss and every parameter's gradient, in this precision."""
    if fp32_out:  # the output layer outside autocast: F's values (and the residuals) not rounded to bf16
        layer_forward = type(model.out).forward
        model.out.forward = lambda h: _fp32(lambda x: layer_forward(model.out, x), h)
        try:
            return one_step(model, cfg, batch, precision, fp32_contraction, fp32_step)
        finally:
            del model.out.forward
    seen = {}
    einsum = torch.einsum

    def logged_einsum(eq, r, jac):  # the contraction m = sum_n r J of the fast step
        if fp32_contraction:
            with torch.autocast("cpu", enabled=False):
                m = einsum(eq, r.float(), jac.float())
        else:
            m = einsum(eq, r, jac)
        seen.update(r=r.detach().float(), jac=jac.detach().float(), m=m.detach().float())
        return m

    model.zero_grad(set_to_none=True)
    step_mod.torch.einsum = logged_einsum
    try:
        amp = Precision(precision, "cpu")
        with torch.autocast("cpu", enabled=False) if fp32_step else amp.autocast():
            z = step_mod.gon_latents(model, batch.coords, batch.values, cfg.gon, batch.scale)
        with amp.autocast():
            loss = step_mod.outer_loss(model, z, batch.coords, batch.values, cfg.gon, batch.scale)[0]
    finally:
        step_mod.torch.einsum = einsum
    loss.float().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {**seen, "z": z.detach().float(), "loss": loss.detach().float().reshape(1), **grads}


def _fp32(forward, h: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", enabled=False):
        return forward(h.float())


def compare(ref: dict, got: dict) -> list[tuple]:
    """Per tensor: relative error, cosine, underflowed entries, Adam first-step sign flips (gradients only)."""
    rows = []
    for name, a in ref.items():
        b = got[name]
        rel = ((b - a).norm() / a.norm().clamp_min(1e-30)).item()
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        under = ((a != 0) & (b == 0)).sum().item()
        flips = (torch.sign(a) != torch.sign(b)).float().mean().item() if name not in ("r", "jac", "m", "z", "loss") \
            else float("nan")
        rows.append((name, rel, cos, under, a.numel(), flips))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a run directory of a SIREN image run (default: fresh)")
    ap.add_argument("--batch-size", type=positive(int), default=64)
    ap.add_argument("--points", type=positive(float), default=0.25)
    add_data_dir(ap)
    args = ap.parse_args()
    model, cfg, batch = load(args)
    ref = one_step(model, cfg, batch, "fp32")
    variants = {"bf16": one_step(model, cfg, batch, "bf16"),
                "bf16 + fp32 contraction": one_step(model, cfg, batch, "bf16", fp32_contraction=True),
                "bf16, step in fp32": one_step(model, cfg, batch, "bf16", fp32_step=True),
                "bf16, output layer fp32": one_step(model, cfg, batch, "bf16", fp32_out=True)}
    print(f"{args.run or 'fresh MNIST model'}: batch {args.batch_size}, points {args.points}, "
          f"outer loss fp32 {ref['loss'].item():.6g}")
    print(f"{'variant':<24} {'tensor':<28} {'rel err':>9} {'cosine':>9} {'underflow':>12} {'Adam flips':>10}")
    for label, got in variants.items():
        for name, rel, cos, under, n, flips in compare(ref, got):
            print(f"{label:<24} {name:<28} {rel:9.2e} {cos:9.6f} {under:6d}/{n:<6d} {flips:10.4f}")


if __name__ == "__main__":
    run_benchmark(main)
