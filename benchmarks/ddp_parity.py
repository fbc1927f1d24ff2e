"""Held-out PSNR of a `torchrun` run against a one-process run with the same global batch, seed and steps.

    python benchmarks/ddp_parity.py [--data-dir DIR] [--steps 1000] [--nproc 2] [--out DIR]

Both runs are the default MNIST config (9,000 / 1,000 when only the t10k file is there), trained by the CLI on the
CPU, one thread per process, then scored by `implicit-gon eval --json` on the 1,000 held-out digits. N processes take
the steps one process takes (the tests check parameters to 1e-5 after a few steps); over many steps the ranks'
float32 sums differ in their last bits, and training amplifies such differences (one-process runs are bit-identical
whatever their thread count, so they give no yardstick for that; `--nproc 2,3` shows the spread between process
counts, each summing in its own order).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, add_data_dir, data_dir, run_benchmark


def _fit(cmd_prefix: list[str], args: list[str], env: dict) -> float:
    """Seconds one `fit images` takes."""
    t0 = time.perf_counter()
    subprocess.run(cmd_prefix + ["-m", "cli", "fit", "images", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - t0


def _psnr(run: Path, env: dict) -> float:
    out = subprocess.run([sys.executable, "-m", "cli", "eval", str(run), "--json", "--device", "cpu"], cwd=ROOT,
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["psnr"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir(ap)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--nproc", default="2", help="process counts to compare with one process, e.g. 2,3")
    ap.add_argument("--out", type=Path, default=None, help="where the two runs go (default: a temporary folder)")
    a = ap.parse_args()
    mnist = data_dir(a.data_dir)
    mnist = mnist / "mnist" if (mnist / "mnist").is_dir() else mnist
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        out = a.out or Path(tmp)
        common = ["--dataset", "mnist", "--data-dir", str(mnist), "--steps", str(a.steps), "--device", "cpu",
                  "--quiet"]
        one = [sys.executable]
        many = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        runs = {"1 process": one}
        runs.update({f"torchrun {n} processes": many + [f"--nproc-per-node={n}"] for n in a.nproc.split(",")})
        res = {}
        for i, (name, cmd) in enumerate(runs.items()):
            secs = _fit(cmd, common + ["--out", str(out / f"run{i}")], env)
            res[name] = (_psnr(out / f"run{i}", env), secs)
    print(f"MNIST default config, {a.steps} steps, global batch as configured, one thread per process")
    base = res["1 process"][0]
    for name, (psnr, secs) in res.items():
        print(f"{name:<24} held-out PSNR {psnr:.3f} dB ({psnr - base:+.3f})  {secs:.0f} s")


if __name__ == "__main__":
    run_benchmark(main)
