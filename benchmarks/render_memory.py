"""Peak resident memory of `implicit-gon render RUN --res 1024 --n 16` (goal: under 2 GB).

    python benchmarks/render_memory.py [RUN]      # default: a small MNIST run it trains first
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = [str(ROOT / ".venv" / "bin" / "implicit-gon")]


def main():
    tmp = Path(tempfile.mkdtemp())
    if len(sys.argv) > 1:
        run = Path(sys.argv[1])
    else:
        run = tmp / "run"
        data = Path(os.environ.get("IMPLICIT_GON_DATA", ROOT.parent / "shared" / "data")) / "mnist"
        subprocess.run(EXE + ["fit", "images", "--dataset", "mnist", "--data-dir", str(data), "--out", str(run),
                              "--steps", "20", "--quiet"], check=True)
    peak = peak_rss_kib(EXE + ["render", str(run), "--res", "1024", "--n", "16", "--out", str(tmp / "r.png")])
    print(f"render --res 1024 --n 16: peak RSS {peak / 1024:.0f} MiB (goal: under 2048 MiB)")


def peak_rss_kib(cmd: list[str]) -> int:
    """Peak RSS of cmd alone: measured from a fresh intermediate process, whose only child is cmd."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
