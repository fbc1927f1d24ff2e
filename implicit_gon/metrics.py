"""Scores and latent statistics shared by training, the tasks, the baselines and the API: PSNR, bits/dim, the
Gaussian fitted to latents and spherical interpolation. Imports nothing of the engine, so any module may use it."""
from __future__ import annotations

import math

import torch


def psnr_from_mse(mse: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-12))


def bits_per_dim(nats: torch.Tensor, dims: int) -> torch.Tensor:
    return nats / (dims * math.log(2))


def fit_gaussian(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (K,) and unbiased covariance (K, K) of latents (n, K), in float64."""
    mean = z.mean(0)
    zc = z - mean
    cov = zc.T @ zc / max(1, len(z) - 1)
    return mean, cov


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents z0, z1 (K,) at times t (T,) -> (T, K). The angle is taken between
    the directions and the norm is interpolated linearly; collinear endpoints fall back to linear interpolation.
    Latents given as numpy arrays (what GON.encode returns) are taken as tensors."""
    z0, z1, t = (torch.as_tensor(v) for v in (z0, z1, t))
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0.clamp_min(1e-12), z1 / n1.clamp_min(1e-12)
    omega = torch.arccos((u0 @ u1).clamp(-1, 1))
    t = t[:, None].to(z0.dtype)
    if omega.abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / so
    return direction * ((1 - t) * n0 + t * n1)
