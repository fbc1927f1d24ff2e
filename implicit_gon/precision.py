"""Mixed precision: autocast to bf16 or fp16 around the objective, float32 master weights, and a gradient scaler for
fp16 (its narrow exponent underflows small gradients). The SIREN keeps its first layer and every sine argument in
float32 (`siren.py`): w0 times a pre-activation spans tens of radians, where bf16's 8-bit mantissa is off by more
than the signal's finest detail; the matrix products run in the low precision."""
from __future__ import annotations

import contextlib

import torch

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


def resolve_precision(name: str, device: torch.device | str) -> str:
    """`auto`: bf16 where the device has it natively (1.6-1.8x faster per step on an AVX-512 BF16 CPU), fp32
    elsewhere. Other names are themselves. The MNIST config's choice: with its 200-step warm-up, 10 of 10 seeds
    train in bf16 within 0.2 dB of float32 (docs/performance.md, "bf16 over ten seeds"); the others keep fp32."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


class Precision:
    """One training precision on one device: autocast context, backward, unscale and optimiser step."""

    def __init__(self, name: str, device: torch.device | str):
        name = resolve_precision(name, device)
        self.name, self.dtype = name, DTYPES[name]
        self.device_type = torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device_type) if name == "fp16" else None

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
