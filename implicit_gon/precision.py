"""Mixed precision: autocast to bf16 or fp16 around the objective, float32 master weights, and a gradient scaler for
fp16 (its narrow exponent underflows small gradients). The SIREN keeps its first layer and every sine argument in
float32 (`siren.py`): w0 times a pre-activation spans tens of radians, where bf16's 8-bit mantissa is off by more
than the signal's finest detail; the matrix products run in the low precision."""
from __future__ import annotations

import contextlib
import math
import time

import torch

from .errors import GONError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device | str) -> bool:
    """Whether the device does bf16 arithmetic natively: a CUDA GPU from Ampere on, or a CPU with AVX-512 BF16 or
    AMX (elsewhere bf16 is emulated, slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:  # not Linux: no way to tell, so the safe choice
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BF16_MIN_SPEEDUP = 1.25
"""`auto` takes bf16 on a CPU only where its probe layer runs at least this much faster than in float32. The
probe's ratio is more extreme than a whole step's in both directions (AMX: layer 2.7-3.2x, MNIST step 1.6x;
AVX-512 BF16 without AMX: layer 0.57-0.86x, step 0.75x), so 1.25 separates them with room for a noisy clock."""

PROBE_ROWS, PROBE_MAX_WIDTH = 4096, 1024  # bounds the probe's memory (16 MB of activations) and time (< 1 s)


def _time_layer(lin: torch.nn.Linear, x: torch.Tensor, dtype: torch.dtype | None) -> float:
    """Seconds for one forward and backward of two sine layers (x: (rows, width)), autocast to dtype or float32,
    sine arguments in float32 as in siren.py."""
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False):
        y = lin(torch.sin(30 * lin(x).float()))  # (rows, width)
    y.float().sum().backward()
    return time.perf_counter() - t0


def bf16_speedup(width: int, reps: int = 3) -> float:
    """float32 time over bf16 time for a hidden SIREN layer of `width` on this CPU, forward and backward. A CPU
    flag says bf16 instructions exist, not that they win: with AVX-512 BF16 alone an Intel core runs the step
    slower in bf16 than in float32 (docs/speed.md). Runs interleave and the fastest of each counts, so a busy
    machine slows both alike. The global random state is left as it was (Linear's initialisation draws from it)."""
    width = min(width, PROBE_MAX_WIDTH)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    with torch.random.fork_rng(devices=[]):
        x = torch.randn(PROBE_ROWS, width)  # (rows, width)
        lin = torch.nn.Linear(width, width)
        for i in range(reps + 1):  # the first pair warms the kernels up and is not counted
            for name in best:
                t = _time_layer(lin, x, DTYPES[name])
                if i:
                    best[name] = min(best[name], t)
    return best["fp32"] / best["bf16"]


def resolve_precision(name: str, device: torch.device | str, width: int = 256, chosen: str | None = None) -> str:
    """`auto`: bf16 where the device has it natively and it pays, fp32 elsewhere. Other names are themselves.
    - `chosen`: what `auto` chose when this run started; a resumed run keeps it, so it continues bit-exactly.
    - a CUDA GPU from Ampere on: bf16 (its tensor cores are always the faster path).
    - a CPU with AVX-512 BF16 or AMX: bf16 if a probe layer of the run's width is BF16_MIN_SPEEDUP faster.
    The MNIST config's choice: with its 200-step warm-up, 10 of 10 seeds train in bf16 within 0.2 dB of float32
    (docs/performance.md, "bf16 over ten seeds"); the others keep fp32."""
    if name != "auto":
        return name
    if chosen in DTYPES:
        return chosen
    if not native_bf16(device):
        return "fp32"
    if torch.device(device).type == "cuda":
        return "bf16"
    return "bf16" if bf16_speedup(width) >= BF16_MIN_SPEEDUP else "fp32"


class Precision:
    """One training precision on one device: autocast context, backward, unscale and optimiser step."""

    def __init__(self, name: str, device: torch.device | str, width: int = 256, chosen: str | None = None):
        name = resolve_precision(name, device, width, chosen)
        self.name, self.dtype = name, DTYPES[name]
        self.device_type = torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device_type) if name == "fp16" else None

    def load_scaler(self, state) -> None:
        """fp16: the gradient scaler as a checkpoint left it (its scale and steps since it last grew), so a resumed
        run skips and rescales exactly the steps an uninterrupted one would."""
        keys = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
        if not (isinstance(state, dict) and set(state) == keys
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                        for k, v in state.items() if k != "_growth_tracker")
                and isinstance(state["_growth_tracker"], int) and state["_growth_tracker"] >= 0):
            raise GONError(f"train_state.grad_scaler: not a gradient scaler's state ({str(state)[:80]})")
        self.scaler.load_state_dict(state)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """True gradients before clipping (fp16 only; the others were never scaled)."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        """Optimiser step; with fp16 a step whose gradients overflowed is skipped and the scale lowered."""
        if self.scaler is None:
            opt.step()
        else:
            self.scaler.step(opt)
            self.scaler.update()


def full_precision(t: torch.Tensor):
    """A region computed in float32 even under autocast (the first layer: coordinates times w0)."""
    return torch.autocast(t.device.type, enabled=False)


def wide(t: torch.Tensor) -> torch.Tensor:
    """t in float32 if autocast made it half or bfloat16; float32 and float64 (gradient checks) stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
