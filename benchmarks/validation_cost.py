"""What one held-out evaluation (fit --val-every) costs, per signal, against a training step, with each signal's
default config: seconds per evaluation, training steps per second, and the share of time validation takes at
--val-every 100. Networks are freshly initialised (the cost does not depend on training, except that SDF
marching cubes and surface sampling run only when the field has a surface; the 64^3 decode dominates anyway).

    python benchmarks/validation_cost.py [--data-dir DIR]     # DIR: $IMPLICIT_GON_DATA, else ../shared/data
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from common import ROOT, steps_per_second


def seconds(f, repeat: int = 2) -> float:
    f()  # warm-up (the SDF ground truth is computed once per signal)
    t0 = time.perf_counter()
    for _ in range(repeat):
        f()
    return (time.perf_counter() - t0) / repeat


def signals_for(name: str, data: Path):
    from implicit_gon.config import resolve
    from signals import audio, image_signal, sdf
    if name == "images":
        cfg = resolve("images", "mnist", None, {"data.data_dir": str(data / "mnist"), "train.device": "cpu"})
        return cfg, image_signal(cfg.data, "train", progress=False), image_signal(cfg.data, "test", progress=False)
    if name == "audio":
        cfg = resolve("audio", "default", None, {"train.device": "cpu"})
        clips = sorted((data / "audio").iterdir())
        return cfg, audio.load_signal(clips[:-1], cfg.data), audio.load_signal(clips[-1:], cfg.data)
    cfg = resolve("sdf", "default", None, {"train.device": "cpu"})
    meshes = sorted((data / "meshes").glob("*.obj"))
    return cfg, sdf.load_signal(meshes[:-1], cfg.data, quiet=True), sdf.load_signal(meshes[-1:], cfg.data, quiet=True)


def measure(name: str, data: Path) -> None:
    from implicit_gon import GON
    from implicit_gon.train import _validate, batch_indices, make_optimizer, step_generator
    from implicit_gon.step import gon_objective
    cfg, train_sig, val_sig = signals_for(name, data)
    torch.manual_seed(0)
    gon = GON(cfg, {**train_sig.meta(), "coord_dim": train_sig.coord_dim, "out_dim": train_sig.out_dim}, "cpu")
    opt, tc = make_optimizer(gon.model, cfg.train), cfg.train
    state = {"step": 0}

    def step():
        s = state["step"]
        b = train_sig.batch(batch_indices(len(train_sig), min(tc.batch_size, len(train_sig)), 0, s), tc.points,
                            step_generator(0, s, "cpu"), "cpu")
        loss, _ = gon_objective(gon.model, b.coords, b.values, cfg.gon, b.scale, step_generator(0, s, "cpu"), 1.0,
                                None if b.query is None else (b.query.coords, b.query.values, b.query.scale))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["step"] += 1
    rate = steps_per_second(step, min_time=5.0)
    t_val = seconds(lambda: _validate(gon, val_sig))
    share = t_val / (t_val + 100 / rate)
    print(f"{name:>7}: validation {t_val:6.2f} s ({min(len(val_sig), tc.val_samples)} held-out samples), "
          f"training {rate:5.2f} steps/s, validation share at --val-every 100: {100 * share:4.1f}%", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path,
                    default=Path(os.environ.get("IMPLICIT_GON_DATA", ROOT.parent / "shared" / "data")))
    ap.add_argument("--signals", nargs="+", default=["images", "audio", "sdf"])
    args = ap.parse_args()
    print(f"torch threads {torch.get_num_threads()}, data {args.data_dir}")
    for name in args.signals:
        measure(name, args.data_dir)


if __name__ == "__main__":
    main()
