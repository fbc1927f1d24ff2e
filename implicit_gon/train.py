"""Training: Adam on the GON objective, with step-seeded randomness so that `--resume` continues the very same run."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .api import GON, bits_per_dim, psnr_from_mse
from .device import make_generator
from .errors import GONError
from .fsio import append_jsonl
from .step import kl_standard_normal, nll_per_sample, per_sample
from .tasks import evaluate as task_evaluate, objective

_PERMS: dict[tuple[int, int, int], torch.Tensor] = {}


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Sample indices of one step: epochs are seeded permutations of the dataset, walked batch_size at a time.
    A pure function of (seed, step), so a resumed run sees exactly the batches the uninterrupted one would."""
    pos = torch.arange(step * batch_size, (step + 1) * batch_size)
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in pos.div(n, rounding_mode="floor").unique().tolist():
        key = (n, seed, epoch)
        if key not in _PERMS:
            if len(_PERMS) > 4:
                _PERMS.clear()
            _PERMS[key] = torch.randperm(n, generator=make_generator(seed * 7919 + epoch))
        mask = pos.div(n, rounding_mode="floor") == epoch
        out[mask] = _PERMS[key][pos[mask] % n]
    return out


def step_generator(seed: int, step: int, device) -> torch.Generator:
    return make_generator(seed * 1_000_003 + step + 1, device)


def kl_weight(cfg, step: int) -> float:
    if cfg.gon.beta_warmup <= 0:
        return cfg.gon.beta
    return cfg.gon.beta * min(1.0, step / cfg.gon.beta_warmup)


def evaluate(gon: GON, signal, idx=None, batch_size: int = 64) -> dict[str, Any]:
    """Encode each sample on all its coordinates in one step and score the reconstruction.
    sse: summed squared error per sample (the paper's Table 1 unit); psnr: mean over samples (peak 1);
    variational runs add bits_per_dim, the negative ELBO per dimension (the paper's Table 2 unit)."""
    idx = torch.arange(len(signal)) if idx is None else torch.as_tensor(idx)
    if gon.cfg.gon.task != "reconstruct":  # classify, joint, convert: implicit_gon/tasks
        return task_evaluate(gon, signal, idx, batch_size)
    sse, psnr, bpd = [], [], []
    gen = make_generator(0, gon.device)
    for s in range(0, len(idx), batch_size):
        b = signal.full(idx[s:s + batch_size], gon.device)
        z = gon.encode(b)
        with torch.no_grad():
            y = gon.model(b.coords, z)[0]
            err = per_sample((y - b.values).square())  # (B,)
            sse.append(err.cpu())
            psnr.append(psnr_from_mse(err / b.values[0].numel()).cpu())
            if gon.model.head is not None:
                bpd.append(_bits_per_dim(gon, b, z, gen).cpu())
    sse, psnr = torch.cat(sse), torch.cat(psnr)
    out = {"n": len(idx), "sse": sse.mean().item(), "psnr": psnr.mean().item()}
    if bpd:
        out["bits_per_dim"] = torch.cat(bpd).mean().item()
    return out


def _bits_per_dim(gon: GON, b, z, gen) -> torch.Tensor:
    """Negative ELBO in bits per dimension, one reparameterised sample of q(z'|x) (seeded)."""
    zs, mu, logvar = gon.model.head(z, gen, sample=True)
    nll = nll_per_sample(gon.model.after_head(b.coords, zs), b.values, gon.cfg.gon)
    return bits_per_dim(nll + kl_standard_normal(mu, logvar), b.values[0].numel())


def _check_finite(loss: torch.Tensor, step: int, run: Path) -> None:
    if not torch.isfinite(loss):
        raise GONError(f"training diverged: loss is {loss.item()} at step {step} (lower --lr or gon.step_size); "
                       f"the last good checkpoint is in {run}")


def make_optimizer(model, tc) -> torch.optim.Adam:
    """Adam; the variational head gets tc.lr * tc.head_lr_mult and a classifier (classify and joint tasks)
    tc.lr * tc.classifier_lr_mult, each a group of its own after F's."""
    fast = [(m, mult) for m, mult in ((model.head, tc.head_lr_mult),
                                      (getattr(model, "classifier", None), tc.classifier_lr_mult)) if m is not None]
    if not fast:
        return torch.optim.Adam(model.parameters(), lr=tc.lr)
    own = {id(p) for m, _ in fast for p in m.parameters()}
    rest = [p for p in model.parameters() if id(p) not in own]
    return torch.optim.Adam([{"params": rest}] + [{"params": list(m.parameters()), "lr": tc.lr * mult}
                                                  for m, mult in fast], lr=tc.lr)


def train(gon: GON, signal, run: str | Path, val_signal=None, optimizer_state=None,
          progress: bool = True) -> dict[str, Any]:
    """Train gon on signal from gon.step to cfg.train.steps, logging to RUN/metrics.jsonl and checkpointing."""
    cfg, run = gon.cfg, Path(run)
    run.mkdir(parents=True, exist_ok=True)
    tc = cfg.train
    batch_size = min(tc.batch_size, len(signal))
    opt = make_optimizer(gon.model, tc)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    writer = _tensorboard(run) if tc.tensorboard else None
    bar = tqdm(total=tc.steps, initial=gon.step, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    t0, s0 = time.perf_counter(), gon.step
    while gon.step < tc.steps:
        step = gon.step
        gen = step_generator(tc.seed, step, "cpu")
        batch = signal.batch(batch_indices(len(signal), batch_size, tc.seed, step), tc.points, gen, gon.device)
        gon.model.train()
        loss, parts = objective(gon.model, batch, cfg, step_generator(tc.seed, step, gon.device), kl_weight(cfg, step))
        _check_finite(loss, step, run)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(gon.model.parameters(), tc.grad_clip)
        opt.step()
        gon.step += 1
        rate = (gon.step - s0) / max(1e-9, time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4g}", steps_s=f"{rate:.2f}")
        if gon.step % tc.log_every == 0 or gon.step == tc.steps:
            row = {"step": gon.step, "loss": loss.item(), **{k: v.item() for k, v in parts.items()},
                   "steps_per_s": rate, "time": time.time()}
            if val_signal is not None and tc.val_every and gon.step % tc.val_every == 0:
                row.update({f"val_{k}": v for k, v in _validate(gon, val_signal).items()})
            append_jsonl(run / "metrics.jsonl", row)
            if writer is not None:
                for k, v in row.items():
                    if k not in ("step", "time"):
                        writer.add_scalar(k, v, gon.step)
        if gon.step % tc.ckpt_every == 0 and gon.step < tc.steps:
            gon.save(run, opt.state_dict())
    bar.close()
    final = _validate(gon, val_signal) if val_signal is not None and len(val_signal) else {}
    gon.last_validation = final
    gon.fit_gaussian(signal)
    gon.save(run, opt.state_dict())
    if final:
        append_jsonl(run / "metrics.jsonl", {"step": gon.step, **{f"val_{k}": v for k, v in final.items()}})
    return final


def _validate(gon: GON, val_signal) -> dict[str, Any]:
    n = min(len(val_signal), gon.cfg.train.val_samples)
    return evaluate(gon, val_signal, torch.arange(n), gon.cfg.train.batch_size)


def _tensorboard(run: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GONError("train.tensorboard needs the tensorboard package: pip install 'implicit-gon[tensorboard]'") from None
    return SummaryWriter(str(run / "tb"))


def fit(signal, cfg, run: str | Path, val_signal=None, progress: bool = True) -> GON:
    """Train a new GON on a Signal from a Config (the notebook entry point; `implicit-gon fit` calls this):

        gon = fit(image_signal(cfg.data, "train"), cfg, "runs/mnist")
    """
    torch.manual_seed(cfg.train.seed)  # initialisation; everything later draws from explicit generators
    meta = {**signal.meta(), "coord_dim": signal.coord_dim, "out_dim": signal.out_dim}
    gon = GON(cfg, meta, cfg.train.device)
    train(gon, signal, run, val_signal, progress=progress)
    return gon
