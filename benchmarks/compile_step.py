"""torch.compile and the gradient-origin step: what compiles, what it gains, and whether it stays exact.

    python benchmarks/step_speed.py --compile [--batch-size 64] [--threads 1] [--min-time 10]

The step differentiates F twice (its Jacobian at the origin with create_graph, then the training backward through
that), and AOTAutograd refuses a double backward through a compiled region. Three variants of the same training
step (MNIST model: 4 sine layers of 256, latent 32; 25% of coordinates; Adam) from the same weights:
- eager;
- "compiled outer pass": torch.compile(model). Calling it compiles F's outer forward and its first-order backward;
  attribute access (model.input, model.trunk, ...) reaches the eager module, so the step itself stays eager;
- "compiled trunk": F's trunk (every sine layer, the step's passes included) compiled: tried, its error reported.
Before timing, one step of each is compared with eager on the same batch: latents, loss and every parameter's
gradient (largest difference over the largest eager value). The variants that run are then timed in alternating
blocks, so a shared CPU's load falls on them alike; steps/s by the wall clock and CPU seconds per step (this
process's CPU time, less sensitive to other jobs). Compilation is reported apart: the first compiled step's time
less a steady step's.
"""
from __future__ import annotations

import time

import torch

from implicit_gon.config import GONConfig, ModelConfig
from implicit_gon.siren import Siren
from implicit_gon.step import gon_latents, outer_loss

POINTS = 0.25


def fresh(mc: ModelConfig, dev) -> Siren:
    torch.manual_seed(0)  # every variant starts from the same weights
    return Siren(2, 1, mc).to(dev)


def variants(mc: ModelConfig, dev) -> dict:
    """name -> the module the step is given."""
    trunk = fresh(mc, dev)
    trunk.trunk = torch.compile(trunk.trunk)  # an instance attribute: the step and the outer pass both use it
    return {"eager": fresh(mc, dev), "compiled outer pass": torch.compile(fresh(mc, dev)), "compiled trunk": trunk}


def one_step(model, b, cfg: GONConfig):
    """Latents (B, K), loss and parameter gradients of one training step (no update)."""
    model.zero_grad(set_to_none=True)
    z = gon_latents(model, b.coords, b.values, cfg, b.scale)
    loss, _ = outer_loss(model, z, b.coords, b.values, cfg, b.scale)
    loss.backward()
    return z.detach(), loss.detach(), [p.grad.detach().clone() for p in model.parameters()]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check(models: dict, b, cfg: GONConfig) -> dict:
    """name -> (first step's seconds, its differences from eager) or the error that stopped it."""
    ref, out = one_step(models["eager"], b, cfg), {}
    for name, m in models.items():
        t0 = time.perf_counter()
        try:
            z, loss, grads = one_step(m, b, cfg)
        except Exception as e:  # noqa: BLE001 - the point is to report what torch.compile refuses
            out[name] = f"fails: {type(e).__name__}: {str(e).strip().splitlines()[0][:160]}"
            continue
        diff = {"latents": rel(z, ref[0]), "loss": rel(loss, ref[1]),
                "gradients": max(rel(g, r) for g, r in zip(grads, ref[2]))}
        out[name] = (time.perf_counter() - t0, diff)
    return out


def trainer(model, sig, idx, cfg: GONConfig, dev, seed: int):
    """A training step closure: its own Adam and its own subset generator."""
    opt, gen = torch.optim.Adam(model.parameters(), 1e-4), torch.Generator().manual_seed(seed)

    def run():
        b = sig.batch(idx, POINTS, gen, dev)
        opt.zero_grad(set_to_none=True)
        z = gon_latents(model, b.coords, b.values, cfg, b.scale)
        outer_loss(model, z, b.coords, b.values, cfg, b.scale)[0].backward()
        opt.step()
    return run


def timed_blocks(fns: dict, min_time: float, blocks: int = 4) -> dict:
    """name -> (steps/s by the wall clock, CPU seconds per step), in alternating blocks of min_time / blocks."""
    n, wall, cpu = dict.fromkeys(fns, 0), dict.fromkeys(fns, 0.0), dict.fromkeys(fns, 0.0)
    for _ in range(blocks):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            while n[name] < 1 or time.perf_counter() - t0 < min_time / blocks:
                fn()
                n[name] += 1
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    return {name: (n[name] / wall[name], cpu[name] / n[name]) for name in fns}


def compare(sig, batch_size: int, min_time: float, dev) -> None:
    mc, cfg, idx = ModelConfig(), GONConfig(), torch.arange(batch_size)
    models = variants(mc, dev)
    checked = check(models, sig.batch(idx, POINTS, torch.Generator().manual_seed(1), dev), cfg)
    runs = {k: trainer(m, sig, idx, cfg, dev, 2) for k, m in models.items() if isinstance(checked[k], tuple)}
    for fn in runs.values():
        fn()  # a second call: anything still compiling (Adam's first step) is out of the timing
    rates = timed_blocks(runs, min_time)
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, batch {batch_size}, "
          f"{POINTS:.0%} of 28x28, SIREN {mc.layers}x{mc.hidden}, latent {mc.latent_dim}")
    print(f"{'':<22} {'steps/s':>8} {'vs eager':>9} {'CPU s/step':>11} {'vs eager':>9} {'compile s':>10}  "
          "largest difference from eager (latents, loss, gradients)")
    for name, c in checked.items():
        if not isinstance(c, tuple):
            print(f"{name:<22} {c}")
            continue
        (rate, cpu), (r0, c0) = rates[name], rates["eager"]
        first, d = c
        comp = "" if name == "eager" else f"{first - 1 / rate:.1f}"
        print(f"{name:<22} {rate:8.2f} {rate / r0:8.2f}x {cpu:11.4f} {cpu / c0:8.2f}x {comp:>10}  "
              f"{d['latents']:.1e}, {d['loss']:.1e}, {d['gradients']:.1e}")
