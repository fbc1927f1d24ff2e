"""Peak memory of one training step per point and hidden unit of a layer: the constant behind
implicit_gon.limits.TRAIN_FLOATS_PER_UNIT (which doubles it for allocator slack and the optimiser's temporaries).

    python benchmarks/train_memory.py [B N HIDDEN LAYERS]...   (default: three MNIST-sized cases)

Each case runs in a fresh process and reports ru_maxrss growth over one gon_objective forward and backward."""
from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, resource, sys, torch
torch.set_num_threads(1)
from implicit_gon.config import Config, merge
from implicit_gon.siren import Siren
from implicit_gon.step import gon_objective
B, N, H, L = map(int, sys.argv[1:5])
cfg = merge(Config(), {"model": {"hidden": H, "layers": L}})
m = Siren(2, 1, cfg.model)
c, v = torch.rand(N, 2) * 2 - 1, torch.rand(B, N, 1)
gc.collect()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loss, _ = gon_objective(m, c, v, cfg.gon, 1.0, torch.Generator().manual_seed(0), 0.0, None)
loss.backward()
grow = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
print(f"B {B} N {N} hidden {H} layers {L}: +{grow / 2**20:.0f} MiB, {grow / (B * N * H * L * 4):.1f} floats per unit")
"""


def main(argv: list[str]) -> None:
    cases = [argv[i:i + 4] for i in range(0, len(argv), 4)] or [["64", "784", "256", "4"], ["128", "784", "256", "4"],
                                                                 ["64", "3136", "128", "3"]]
    for case in cases:
        subprocess.run([sys.executable, "-c", PROBE, *case], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
