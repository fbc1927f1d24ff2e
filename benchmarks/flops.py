"""Matrix-multiply FLOPs of a training step, and the machine's own matrix-multiply rate on the same shapes.

The count: every matrix product the step dispatches (aten mm, addmm, bmm, baddbmm), 2·m·k·n floating-point
operations each (a multiply and an add per term), recorded below autograd, so it covers all that one step runs:
the gradient step's forward of F at the origin and its backward to z (with create_graph), the outer forward of F
at z, and the training backward through both (the double backward included). Elementwise work (sin, cos,
products, the loss, Adam) is not counted: it is O(B·N·H) against the products' O(B·N·H²). For the SIREN with L sine
layers of H units, N points, batch B and latent K, one pass of F costs about 2·B·N·H·(d + (L-1)·H + C) + 2·B·H·K;
the engine's step is about 8 such passes (forward, its backward to z, the outer forward, then backward through
all three at about twice each), Eq. 12's about the same on the concatenated input.

The reference rate: the same list of products, as plain torch.mm of the same shapes in the same dtypes (a bf16
step's products are bf16 but for the SIREN's first layer, kept in float32), timed back to back; and, for the
machine's headline figure, a large square torch.mm in fp32 and in bf16.
"""
from __future__ import annotations

import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_MM = {"mm", "addmm", "bmm", "baddbmm"}


class MatmulLog(TorchDispatchMode):
    """Records (batch, m, k, n, dtype, layout) of every matrix product dispatched inside it (under autocast some run
    in bf16 and some, the SIREN's first layer, in float32; layout: whether each operand is a transposed view, as
    nn.Linear's weight is, which some kernels care about)."""

    def __init__(self):
        super().__init__()
        self.shapes: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in _MM:
            a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
            batch = a.shape[0] if a.dim() == 3 else 1
            layout = (a.stride(-1) != 1, b.stride(-1) != 1)
            self.shapes[(batch, a.shape[-2], a.shape[-1], b.shape[-1], a.dtype, layout)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def flops(self) -> int:
        return total_flops(self.shapes)


def total_flops(shapes: Counter) -> int:
    return sum(2 * bt * m * k * n * c for (bt, m, k, n, *_), c in shapes.items())


def _operand(bt: int, rows: int, cols: int, dtype, transposed: bool, device) -> torch.Tensor:
    """A random (bt,) rows x cols operand, stored transposed (a .mT view) when the logged one was."""
    shape = (*(bt,) * (bt > 1), *((cols, rows) if transposed else (rows, cols)))
    t = torch.randn(*shape, device=device).to(dtype)
    return t.mT if transposed else t


def count(step) -> MatmulLog:
    """Run step() once under the log: its matrix products and their FLOPs."""
    with MatmulLog() as log:
        step()
    return log


def mm_rate(shapes: Counter, device, min_time: float = 2.0) -> float:
    """FLOP/s of plain torch.mm (torch.bmm for batched ones) over the given products, each in its logged dtype and
    layout and as often as logged, run back to back until min_time has passed."""
    ops = []
    for (bt, m, k, n, dtype, (ta, tb)), c in shapes.items():
        a, b = _operand(bt, m, k, dtype, ta, device), _operand(bt, k, n, dtype, tb, device)
        ops.append((torch.bmm if bt > 1 else torch.mm, a, b, c))

    def once():
        for f, a, b, c in ops:
            for _ in range(c):
                f(a, b)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time or n < 1:
        once()
        n += 1
    return total_flops(shapes) * n / (time.perf_counter() - t0)


def square_peak(dtype: torch.dtype, device, size: int = 2048, min_time: float = 2.0) -> float:
    """FLOP/s of one large square torch.mm: the machine's headline matrix-multiply rate in this dtype."""
    return mm_rate(Counter({(1, size, size, size, dtype, (False, False)): 1}), device, min_time)
