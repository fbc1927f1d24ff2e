"""Building the decoded cache of a large image folder: wall-clock and peak resident memory.

    python benchmarks/cache_build.py [--n 50000] [--size 48] [--res 32] [--workdir DIR]

Writes n random-content JPEGs (size x size) into a folder, then builds the folder dataset's cache at --res in a
child process (a fresh interpreter, so its peak RSS is the build's own) and reports time and peak RSS; a second
load shows that training starts from the memory map without decoding again.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from signals.datasets import load_images
t0 = time.perf_counter()
x = load_images("folder", "train", {folder!r}, {res}, 3, {cache!r}, progress=False)
first = time.perf_counter() - t0
t0 = time.perf_counter()
y = load_images("folder", "train", {folder!r}, {res}, 3, {cache!r}, progress=False)
again = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"n": len(x), "shape": list(x.shape), "build_s": first, "reload_s": again, "peak_mb": peak,
                   "memmap": type(y).__name__}}))
"""


def write_folder(folder: Path, n: int, size: int) -> None:
    from PIL import Image
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        pic = np.roll(base, i, axis=1) ^ np.uint8(i % 251)
        Image.fromarray(pic).save(sub / f"{i:06d}.jpg", quality=85)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--workdir", default=None, help="Where the folder and cache go (default: a temp dir).")
    args = ap.parse_args()
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder, cache = Path(tmp) / "images", Path(tmp) / "cache"
        folder.mkdir()
        t0 = time.perf_counter()
        write_folder(folder, args.n, args.size)
        print(f"wrote {args.n} JPEGs of {args.size}x{args.size} in {time.perf_counter() - t0:.0f} s", flush=True)
        code = CHILD.format(root=str(root), folder=str(folder), res=args.res, cache=str(cache))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr.strip().splitlines()[-1])
        r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"cache of {r['n']} training images {tuple(r['shape'])}: built in {r['build_s']:.1f} s, peak RSS "
          f"{r['peak_mb']:.0f} MB; loaded again (no decoding) in {r['reload_s']:.2f} s as a {r['memmap']}")


if __name__ == "__main__":
    main()
