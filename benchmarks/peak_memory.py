"""Peak resident memory of the commands with a 2 GB goal:
`render RUN --res 1024 --n 16` (images) and `export-mesh RUN --res 256` (SDF).

    python benchmarks/peak_memory.py [--data-dir DIR] [--image-run RUN] [--sdf-run RUN]

Without runs it trains small ones first (a few MNIST steps; a sphere and a box for SDF); memory does not depend on
how well a run is trained, only on the model's width and the output size.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_data_dir, run_benchmark  # noqa: E402

EXE = [str(ROOT / ".venv" / "bin" / "implicit-gon")]


def peak_rss_kib(cmd: list[str]) -> int:
    """Peak RSS of cmd alone: measured from a fresh intermediate process, whose only child is cmd."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def image_run(tmp: Path, data_arg: Path | None) -> Path:
    from common import data_dir
    run = tmp / "images"
    data = data_dir(data_arg)
    subprocess.run(EXE + ["fit", "images", "--dataset", "mnist", "--data-dir", str(data), "--out", str(run),
                          "--steps", "20", "--quiet"], check=True)
    return run


def sdf_run(tmp: Path) -> Path:
    import trimesh
    trimesh.creation.icosphere(subdivisions=3, radius=0.5).export(tmp / "sphere.ply")
    trimesh.creation.box(extents=[1.0, 0.6, 0.6]).export(tmp / "box.ply")
    run = tmp / "sdf"
    subprocess.run(EXE + ["fit", "sdf", "--data", str(tmp / "sphere.ply"), "--data", str(tmp / "box.ply"),
                          "--out", str(run), "--steps", "150", "--samples", "20000", "--quiet"], check=True)
    return run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-run", type=Path)
    ap.add_argument("--sdf-run", type=Path)
    add_data_dir(ap)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    run = args.image_run or image_run(tmp, args.data_dir)
    peak = peak_rss_kib(EXE + ["render", str(run), "--res", "1024", "--n", "16", "--out", str(tmp / "r.png")])
    print(f"render --res 1024 --n 16: peak RSS {peak / 1024:.0f} MiB (goal: under 2048 MiB)")
    run = args.sdf_run or sdf_run(tmp)
    peak = peak_rss_kib(EXE + ["export-mesh", str(run), "--index", "0", "--res", "256", "--out", str(tmp / "m.ply")])
    print(f"export-mesh --res 256: peak RSS {peak / 1024:.0f} MiB (goal: under 2048 MiB)")


if __name__ == "__main__":
    run_benchmark(main)
