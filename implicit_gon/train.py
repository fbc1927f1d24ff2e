"""Training: Adam on the GON objective, with step-seeded randomness so that `--resume` continues the very same run."""
from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import interrupts, methods, schedule
from .api import GON
from .checkpoint import BEST, CKPT
from .device import make_generator
from .distributed import SINGLE, Dist, agree, agree_value, check_batch, reduce_gradients, shard_batch
from .errors import GONError, Interrupted, UsageError
from .fsio import append_jsonl
from .host import keep_freed_memory
from .metrics import bits_per_dim, psnr_from_mse
from .optim import make_optimizer
from .precision import Precision
from .guard import MAX_ROLLBACKS, Diverged, LossWatch, NonFinite
from .progress import duration, eta, progress_bar
from .rundir import checkpoint_step, interrupted, repair_metrics, training
from .step import kl_standard_normal, nll_per_sample, per_sample
from .stopping import EarlyStop
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
    own = methods.evaluate(gon, signal, idx, batch_size)  # vae: bits/dim from its own posterior
    if own is not None:
        return own
    sse, psnr, bpd = [], [], []
    gen = make_generator(0, gon.device)
    for s in range(0, len(idx), batch_size):
        b = signal.full(idx[s:s + batch_size], gon.device)
        z = gon.encode_batch(b)
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


def _diverged(run: Path, why: str, fatal: str | None = None, good: tuple[int, str] | None = None) -> Diverged:
    """The one line of a run that diverged: what happened, and the checkpoint that is left (never one written
    after the divergence: saves refuse non-finite state), or that none is (its folder is about to go). `fatal`:
    the line for a checkpoint whose own next step diverged (_rollback_target); `good`: (step, file name) of the
    checkpoint the run last went back to, when that is not the last one."""
    step = checkpoint_step(run) if good is None else good[0]
    if step is None:
        kept = "no checkpoint had been written, so nothing is kept"
    elif good is not None and good[1] != CKPT:  # rolled back to an earlier one: the last is not the good one
        kept = fatal or (f"the last good checkpoint is {run / good[1]} (step {step}); copy it over {CKPT}, then "
                         f"fit --resume with a lower --lr")
    else:
        kept = fatal or (f"the last good checkpoint is {run / CKPT} (step {step}), untouched; fit --resume with a "
                         f"lower --lr continues it")
    fix = "lower --lr or gon.step_size, or set train.grad_clip"
    if "(train.divergence_factor)" in why or "(train.drift_factor)" in why:  # a finite loss judged by its spread
        fix += ("; where this data's batches differ that much by nature (audio that is mostly silence), "
                "--set train.divergence_factor=0 --set train.drift_factor=0 judges non-finite losses only")
    return Diverged(f"training diverged: {why} ({fix}); {kept}")


def _checkpoints(run: Path) -> dict[int, str]:
    """RUN's checkpoints on disk, step -> file name: the last one and the earlier ones kept (train.keep)."""
    from .checkpoint import previous_steps
    found = {step: p.name for step, p in previous_steps(run)}
    step = checkpoint_step(run)
    return {**found, step: CKPT} if step is not None else found


def _rollback_target(gon: GON, loop: _Loop, run: Path, on_disk: dict[int, str]) -> tuple[int | None, str | None]:
    """(the step of the checkpoint a rollback returns to, or None; the stop line's words when the weights in memory
    are a checkpoint's own). That is the newest checkpoint at or before the one the weights came from (written,
    loaded or rolled back to: loop.base_step); but a divergence at the very step after it (gon.step ==
    base_step) is that checkpoint's own: its next loss and gradient do not depend on the learning rate, so going
    back there diverges again, as often as rollbacks are allowed (issue 21). Then the newest one before it.
    on_disk: _checkpoints(run)."""
    fatal = gon.step == loop.base_step
    kept = {s: n for s, n in on_disk.items() if s < loop.base_step or (s == loop.base_step and not fatal)}
    target = max(kept) if kept else None
    if not fatal:
        return target, None
    where = (f"continue from the earlier {run / kept[target]} (step {target}: copy it over {CKPT}, then fit "
             f"--resume with a lower --lr)" if target is not None else "no earlier one is kept (train.keep): "
             f"start again with a lower --lr")
    return target, (f"the checkpoint {run / on_disk.get(gon.step, CKPT)} (step {gon.step}) is untouched, but its very "
                    f"next step diverges whatever the learning rate; {where}")


def _roll_back(gon: GON, loop: _Loop, run: Path, why: str, dist: Dist, agreed: bool = True) -> None:
    """train.on_divergence rollback: reload the last checkpoint (weights, Adam state, step), halve the learning
    rate (kept in train_state, so --resume keeps it), take early stopping and the divergence guard back to the
    checkpoint's and log it; else, or with nothing to go back to, stop. Under torchrun only a divergence every rank
    saw (agreed) rolls back, to rank 0's choice of checkpoint: rank 0 alone cannot take the others along."""
    rolls, on_disk = gon.train_state.get("rollbacks", 0), _checkpoints(run)
    target, fatal = _rollback_target(gon, loop, run, on_disk)
    if dist.active and agreed:
        target = int(agree_value(dist, -1.0 if target is None else float(target), gon.device))
        target = None if target < 0 else target
    if gon.cfg.train.on_divergence != "rollback" or rolls >= MAX_ROLLBACKS or target is None \
            or (dist.active and not agreed):
        good = (loop.base_step, on_disk[loop.base_step]) if loop.base_step in on_disk else None
        raise _diverged(run, why, fatal, good)
    good, state = GON.load(run, gon.device, with_optimizer=True, name=on_disk[target])
    gon.model.load_state_dict(good.model.state_dict())
    loop.opt.load_state_dict(state)
    scale = gon.train_state.get("lr_scale", 1.0) / 2
    failed = max(gon.step + 1, gon.train_state.get("diverged_at", 0))  # no checkpoint until the run is past it
    gon.step, gon.train_state = good.step, {**good.train_state, "lr_scale": scale, "rollbacks": rolls + 1,
                                            "diverged_at": failed}
    loop.ckpt_owed, loop.base_step = False, good.step
    if dist.main:
        repair_metrics(run, gon.step)
        append_jsonl(run / "metrics.jsonl", {"step": gon.step, "event": "rollback", "diverged": why,
                                             "lr_scale": scale, "time": time.time()})
        print(f"rolled back to step {gon.step} ({why}); learning rate x{scale:g}", file=sys.stderr)
    loop.stopper = EarlyStop.for_run(gon.cfg, gon.train_state.get("early_stop"))
    loop.watch = LossWatch.for_run(gon.cfg.train, gon.train_state)  # the checkpoint's window and lowest median


def _stop_on_signal(gon: GON, opt, run: Path, dist: Dist, taken: int) -> None:
    """A stop signal arrived during the step just taken: checkpoint this step (rank 0; unless no step was taken
    here, when the checkpoint already is at it) and end with the signal's exit status."""
    signum = interrupts.pending() or signal.SIGTERM  # ranks other than 0 stop with rank 0
    interrupts.clear()
    if dist.main and taken:
        gon.save(run, opt.state_dict())
    if not dist.main:
        raise Interrupted(f"rank {dist.rank}: interrupted by {signal.Signals(signum).name} (rank 0 checkpoints the "
                          f"run)", 128 + signum)
    raise interrupted(run, signum)


@training  # holds RUN: a lock, stale temporary files removed, metrics cut to the step, Ctrl-C as one line
def train(gon: GON, signal, run: str | Path, val_signal=None, optimizer_state=None,
          progress: bool = True, dist: Dist = SINGLE, on_step=None, clock=None) -> dict[str, Any]:
    """Train gon on signal from gon.step to cfg.train.steps, logging to RUN/metrics.jsonl and checkpointing.
    With train.val_every, the held-out data are scored every val_every steps and RUN/best.safetensors keeps the
    best weights by the monitored metric; training stops earlier after train.patience evaluations without
    improvement or after train.max_time seconds (gon.stop_reason says why). Either way the run ends as at
    train.steps: a final validation, the latent Gaussian fitted (on the last and on the best weights), a checkpoint
    that --resume continues; besides every train.ckpt_every steps, a checkpoint every train.ckpt_minutes by clock()
    (default time.monotonic; tests pass a fake one). Under torchrun (dist) each rank trains on its rows of the same
    global batch; rank 0 alone validates, decides when to stop and writes. on_step(gon, seconds), when given, is
    called after every step with the seconds this invocation has trained (benchmarks snapshot the weights at time
    marks with it)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    loop = _start(gon, signal, run, val_signal, optimizer_state, progress, dist, clock or time.monotonic)
    with interrupts.handled(), interrupts.deferred():  # a stop signal waits for the step's end: see _stop_on_signal
        while gon.step < gon.cfg.train.steps and gon.stop_reason is None:
            _train_step(gon, signal, run, val_signal, loop, dist, on_step)
        loop.bar.close()
        if not dist.main:
            return {}
        _warn_if_worse(gon, run, loop.watch)
        try:
            return _finish(gon, signal, run, val_signal, loop.opt, loop.stopper, loop.val)
        except NonFinite as e:
            raise _diverged(run, f"at the end of training (step {gon.step}), {e}") from None


def _warn_if_worse(gon: GON, run: Path, watch: LossWatch) -> None:
    """A run that ends above its first loss did not diverge by any criterion, yet failed: say so (stderr and a
    metrics.jsonl row), once per run end."""
    worse = watch.worse_than_start()
    if worse:
        print(f"warning: {worse}", file=sys.stderr)
        append_jsonl(run / "metrics.jsonl", {"step": gon.step, "event": "warning", "warning": worse,
                                             "time": time.time()})


@dataclass
class _Loop:
    """What one train() invocation carries from step to step; the run's own state (weights, step, train_state)
    lives on the GON and in its checkpoint, so --resume rebuilds this from there."""
    opt: torch.optim.Optimizer
    base_lr: list[float]  # the config's rate of each parameter group; the schedule scales them every step
    amp: Precision
    batch_size: int  # global batch: train.batch_size, or the whole dataset when that is smaller
    sampling: dict  # signal.batch's extra keywords: {"stratified": True} with train.sampling stratified
    validating: bool  # held-out data and train.val_every > 0
    stopper: EarlyStop
    watch: LossWatch
    bar: Any
    writer: Any  # TensorBoard SummaryWriter on rank 0 with train.tensorboard, else None
    clock: Callable[[], float]  # for train.ckpt_minutes (time.monotonic; tests pass a fake)
    t0: float = field(default_factory=time.perf_counter)  # this invocation's start: schedules and rates read it
    elapsed0: float = 0.0  # training seconds of earlier invocations (train_state["elapsed"])
    last_ckpt: float = 0.0  # clock() at the last checkpoint written (or the start)
    ckpt_owed: bool = False  # a checkpoint was due but the state looked unsettled (LossWatch.unsettled)
    val: dict | None = None  # the held-out scores of the step just taken, when it evaluated
    taken: int = 0  # steps taken by this invocation
    base_step: int = -1  # the step of the checkpoint last written, resumed or rolled back to (-1: none yet)
    rate: float = 0.0  # steps per second of this invocation


def _precision(gon: GON, dist: Dist) -> Precision:
    """The run's arithmetic. `auto` is decided once, when the run starts (rank 0's probe, every rank's choice),
    and kept in train_state: a resumed run continues in it, whatever the machine's load when it resumes."""
    tc = gon.cfg.train
    amp = Precision(tc.precision, gon.device, gon.cfg.model.hidden, gon.train_state.get("auto_chose"))
    if tc.precision == "auto":
        bf16 = agree_value(dist, float(amp.name == "bf16"), gon.device)
        amp = Precision("bf16" if bf16 else "fp32", gon.device)
        gon.train_state["auto_chose"] = amp.name
    gon.train_state["precision"] = amp.name  # what the run trained in, kept with it
    if amp.scaler is not None and "grad_scaler" in gon.train_state:  # a resumed fp16 run: its scale as it was
        amp.load_scaler(gon.train_state["grad_scaler"])
    return amp


def _start(gon: GON, signal, run: Path, val_signal, optimizer_state, progress: bool, dist: Dist,
           clock) -> _Loop:
    """Everything a run needs before its first step: the optimiser (with a resumed run's state), precision, early
    stopping and the divergence guard as train_state holds them, the progress bar."""
    tc = gon.cfg.train
    if gon.device.type == "cpu":
        keep_freed_memory()  # 1.5x on CPU for steps with large activations (host.py)
    batch_size = min(tc.batch_size, len(signal))
    if tc.encode == "full":
        signal.encode_full = True  # ImageSignal: latents from every pixel; `points` thins the outer loss only
    check_batch(batch_size, dist)
    opt = make_optimizer(gon.model, tc)
    base_lr = [g["lr"] for g in opt.param_groups]
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    amp = _precision(gon, dist)
    writer = _tensorboard(run) if tc.tensorboard and dist.main else None
    validating = val_signal is not None and tc.val_every > 0
    if tc.patience and not validating:
        raise GONError(f"train.patience = {tc.patience}: early stopping needs held-out data (val_signal)")
    stopper = EarlyStop.for_run(gon.cfg, gon.train_state.get("early_stop"))
    gon.stop_reason = _patience_spent(stopper, tc.patience, gon.step, "already ")
    gon.gaussian = None  # fitted to weights that are about to change; refitted at the end
    bar = progress_bar(tc.steps, gon.step, progress and dist.main)  # tqdm on a terminal, a line every few steps else
    loop = _Loop(opt, base_lr, amp, batch_size, {"stratified": True} if tc.sampling == "stratified" else {},
                 validating, stopper, LossWatch.for_run(tc, gon.train_state), bar, writer, clock,
                 elapsed0=gon.train_state.get("elapsed", 0.0))
    loop.last_ckpt = clock()
    loop.base_step = gon.step if checkpoint_step(run) == gon.step else -1
    return loop


def _train_step(gon: GON, signal, run: Path, val_signal, loop: _Loop, dist: Dist, on_step) -> None:
    """One optimiser step and what follows it: the log row, validation, the stop decision, a checkpoint. A
    divergence (an exploding loss, or non-finite state found while writing) rolls back and returns early."""
    tc = gon.cfg.train
    loss, parts, batch = _forward(gon, signal, loop, dist)
    steady = kl_weight(gon.cfg, gon.step) == gon.cfg.gon.beta  # the KL warm-up changes the objective itself
    # the step under way is gon.step + 1, as metrics.jsonl and the progress bar count it
    why = agree(dist, loop.watch.check(loss.item(), gon.step + 1, steady), gon.device)  # rank 0's loss decides
    if why:
        return _roll_back(gon, loop, run, why, dist)
    share = batch.values.shape[0] / loop.batch_size  # this rank's part of the global batch (1 on one process)
    norm = _gradients(gon, loop, loss, share, dist)
    why = agree(dist, loop.watch.grads.check(norm, gon.step + 1, steady, loop.amp.scaler is not None), gon.device)
    if why:  # judged before the update: the weights on disk and in memory never take this step
        return _roll_back(gon, loop, run, why, dist)
    gon.train_state["guard"] = loop.watch.state()  # checkpointed with the step: --resume judges as before
    _update(gon, loop)
    seconds = _count_step(gon, loop, loss, on_step)
    evaluating = loop.validating and gon.step % tc.val_every == 0
    try:
        loop.val = _keep_best(gon, val_signal, loop.stopper, run) if evaluating and dist.main else None
    except NonFinite as e:  # best.safetensors refused non-finite weights
        return _roll_back(gon, loop, run, f"after step {gon.step}, {e}", dist, agreed=False)
    signalled = "signal" if interrupts.pending() else None
    gon.stop_reason = agree(dist, signalled or _patience_spent(loop.stopper, tc.patience, gon.step)
                            or _time_spent(tc, seconds, gon.step), gon.device)
    if gon.step % tc.log_every == 0 or gon.step == tc.steps or evaluating or gon.stop_reason:
        _log_row(gon, run, loop.opt, loop.writer, dist, loop.val, loop.rate, {"loss": loss, **parts}, share,
                 norm)
    if gon.stop_reason == "signal" or (gon.stop_reason and interrupts.pending()):
        _stop_on_signal(gon, loop.opt, run, dist, loop.taken)
    _checkpoint_due(gon, loop, run, dist)


def _forward(gon: GON, signal, loop: _Loop, dist: Dist):
    """This step's learning rate, its batch (this rank's rows) and the loss: (loss, parts, batch). The batch and
    every random draw are pure functions of (seed, step), so a resumed run takes the very same step."""
    tc, step = gon.cfg.train, gon.step
    p = schedule.progress(tc, step, time.perf_counter() - loop.t0)  # fraction of the run (steps, or max_time)
    p = agree_value(dist, p, gon.device) if tc.max_time else p  # a time budget reads each rank's own clock
    scale = gon.train_state.get("lr_scale", 1.0)  # halved by each rollback (train.on_divergence)
    schedule.set_lr(loop.opt, [b * scale for b in loop.base_lr], schedule.lr_factor(tc, step, p))
    idx = batch_indices(len(signal), loop.batch_size, tc.seed, step)  # (batch_size,) sample indices
    gen = step_generator(tc.seed, step, "cpu")  # which coordinates each sample shows (train.points)
    # coords (N, d) or (B, N, d), values (B, N, C): B is this rank's rows
    batch = shard_batch(signal.batch(idx, tc.points, gen, gon.device, **loop.sampling), dist)
    gon.model.train()
    with loop.amp.autocast():
        loss, parts = objective(gon.model, batch, gon.cfg, step_generator(tc.seed, step, gon.device),
                                kl_weight(gon.cfg, step))
    return loss, parts, batch


def _gradients(gon: GON, loop: _Loop, loss: torch.Tensor, share: float, dist: Dist) -> float:
    """Gradients of the loss (averaged over the ranks, each weighted by its share), clipped to train.grad_clip;
    returns their norm before clipping (the same on every rank: the gradients are reduced first)."""
    loop.opt.zero_grad(set_to_none=True)
    loop.amp.backward(loss)
    reduce_gradients(gon.model, dist, share)
    loop.amp.unscale(loop.opt)  # (fp16's loss scale off) before the norm is measured
    params = [p for p in gon.model.parameters() if p.grad is not None]
    clip = gon.cfg.train.grad_clip
    norm = torch.nn.utils.clip_grad_norm_(params, clip) if clip > 0 else grad_norm(params)
    return norm.item()


def grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of every parameter's gradient together, as clip_grad_norm_ measures it (without scaling any)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))


def _update(gon: GON, loop: _Loop) -> None:
    """One Adam step with the gradients just taken."""
    loop.amp.step(loop.opt)
    if loop.amp.scaler is not None:  # fp16: the loss scale and its growth count go with the checkpoint
        gon.train_state["grad_scaler"] = loop.amp.scaler.state_dict()
    gon.step += 1
    loop.taken += 1


def _count_step(gon: GON, loop: _Loop, loss: torch.Tensor, on_step) -> float:
    """Time and progress of the step just taken; returns the seconds this invocation has trained."""
    seconds = time.perf_counter() - loop.t0
    gon.train_state["elapsed"] = loop.elapsed0 + seconds  # training time over every invocation, for `plot --x time`
    loop.rate = loop.taken / max(1e-9, seconds)
    if on_step is not None:
        on_step(gon, seconds)
    loop.bar.update(1)
    left = gon.cfg.train.steps - gon.step
    loop.bar.set_postfix(loss=f"{loss.item():.4g}", steps_s=f"{loop.rate:.2f}",
                         eta=duration(eta(loop.taken, left, seconds, gon.cfg.train.max_time)))
    return seconds


def _checkpoint_due(gon: GON, loop: _Loop, run: Path, dist: Dist) -> None:
    """Rank 0 checkpoints every train.ckpt_every steps and every train.ckpt_minutes by the clock, but not at a
    step where the run ends (_finish writes that one). A state that looks unsettled is not written as a good one:
    the checkpoint waits for the first step that is not (logged to metrics.jsonl), or the guard stops the run."""
    tc = gon.cfg.train
    timed = tc.ckpt_minutes > 0 and loop.clock() - loop.last_ckpt >= tc.ckpt_minutes * 60
    if not ((gon.step % tc.ckpt_every == 0 or timed or loop.ckpt_owed) and gon.step < tc.steps
            and gon.stop_reason is None and dist.main):
        return
    if gon.step <= gon.train_state.get("diverged_at", 0):  # after a rollback: a checkpoint short of the step that
        return  # diverged could hold the cause, and the next rollback would return to it instead of to the good one
    why = loop.watch.unsettled()
    if why and not loop.ckpt_owed:
        append_jsonl(run / "metrics.jsonl", {"step": gon.step, "event": "checkpoint_postponed", "why": why})
        print(f"warning: checkpoint at step {gon.step} postponed: {why}", file=sys.stderr)
    loop.ckpt_owed = bool(why)
    if why:
        return
    try:
        gon.save(run, loop.opt.state_dict())
    except NonFinite as e:  # the save refused non-finite weights or Adam state
        return _roll_back(gon, loop, run, f"after step {gon.step}, {e}", dist, agreed=False)
    loop.last_ckpt, loop.base_step = loop.clock(), gon.step


def _log_row(gon: GON, run: Path, opt, writer, dist: Dist, val, rate: float, parts: dict, share: float,
             norm: float) -> None:
    """One metrics.jsonl row (and TensorBoard scalars) of the step just taken: the global batch's means, and the
    gradient's norm before clipping."""
    parts = global_mean(parts, share, dist)  # every rank
    if not dist.main:
        return
    row = {"step": gon.step, **parts, "grad_norm": norm, "lr": opt.param_groups[0]["lr"], "steps_per_s": rate,
           "time": time.time(), "elapsed": gon.train_state["elapsed"]}
    row.update({f"val_{k}": v for k, v in (val or {}).items()})
    append_jsonl(run / "metrics.jsonl", row)
    if writer is not None:
        for k, v in row.items():
            if k not in ("step", "time") and isinstance(v, (int, float)):
                writer.add_scalar(k, v, gon.step)


def _keep_best(gon: GON, val_signal, stopper: EarlyStop, run: Path) -> dict[str, Any]:
    """Score the held-out data; when the monitored metric improved, write the weights to RUN/best.safetensors."""
    val = _validate(gon, val_signal)
    if stopper.update(gon.step, val):
        gon.save(run, name=BEST)
    gon.train_state["early_stop"] = stopper.state()
    return val


def _time_spent(tc, seconds: float, step: int) -> str | None:
    if not tc.max_time or seconds < tc.max_time or step >= tc.steps:
        return None
    return (f"stopped at step {step} after the {tc.max_time:g} s wall-clock budget (train.max_time); "
            f"fit --resume continues the run")


def _patience_spent(stopper: EarlyStop, patience: int, step: int, already: str = "") -> str | None:
    if not stopper.exhausted(patience):
        return None
    return (f"{already}stopped early at step {step}: val_{stopper.metric} did not improve for {stopper.bad} "
            f"evaluations ({stopper.describe()}; --checkpoint best uses those weights)")


def _finish(gon: GON, signal, run: Path, val_signal, opt, stopper: EarlyStop, val) -> dict[str, Any]:
    """End of a run, whatever stopped it: validate (reusing an evaluation of this very step), fit the latent
    Gaussian, checkpoint; the best weights get their own Gaussian fit."""
    final = {}
    if val_signal is not None and len(val_signal):
        final = val if val is not None else _validate(gon, val_signal)
    gon.last_validation = final
    if final and gon.cfg.train.val_every and val is None and stopper.improves(final):
        stopper.update(gon.step, final)  # the last step falls between evaluations and beats them all
        gon.train_state["early_stop"] = stopper.state()
        gon.save(run, name=BEST)
    gon.fit_gaussian(signal)
    gon.save(run, opt.state_dict())
    if (run / BEST).is_file():
        best = GON.load(run, gon.device, which="best")
        best.fit_gaussian(signal)  # the paper's Appendix D samples the early-stopped model's Gaussian
        best.save(run, name=BEST)
    if final and val is None:  # (an evaluation of this very step is in its row already)
        append_jsonl(run / "metrics.jsonl", {"step": gon.step, "time": time.time(),
                                             "elapsed": gon.train_state.get("elapsed", 0.0),
                                             **{f"val_{k}": v for k, v in final.items()}})
    return final


def global_mean(parts: dict[str, torch.Tensor], share: float, dist: Dist) -> dict[str, float]:
    """The global batch's mean of each logged scalar: the ranks' means weighted by their share of the batch."""
    vals = torch.stack([v.detach().float().reshape(()) for v in parts.values()]).cpu()
    if dist.active:
        import torch.distributed as td

        from .distributed import collective
        vals = vals * share
        with collective(dist):
            td.all_reduce(vals)
    return dict(zip(parts, vals.tolist()))


def _validate(gon: GON, val_signal) -> dict[str, Any]:
    """Held-out scores of the first train.val_samples samples; audio and SDF signals score themselves (their
    `validate`: SNR of windows, Chamfer distance of meshes), images with `evaluate`."""
    n = min(len(val_signal), gon.cfg.train.val_samples)
    own = getattr(val_signal, "validate", None)
    if own is not None:
        return own(gon, n, gon.cfg.train.batch_size)
    return evaluate(gon, val_signal, torch.arange(n), gon.cfg.train.batch_size)


def _claim_run(run: Path, overwrite: bool) -> None:
    """Refuse to train a new model into a run directory that holds one (unless overwrite: then its metrics and
    earlier checkpoints go) or files that are not a run's."""
    from .checkpoint import CKPT, previous
    from .rundir import check_new
    if not (run / CKPT).is_file():
        return check_new(run)  # missing, empty, or a run's own files only: overwrite replaces runs, nothing else
    if not overwrite:
        raise UsageError(f"{run}: already holds a run (pass overwrite=True to replace it, or choose another run "
                         "directory; train() continues a loaded run)")
    for old in [run / "metrics.jsonl", *previous(run), run / CKPT]:  # the earlier run's: the new run's first save
        old.unlink(missing_ok=True)  # would keep its checkpoint as an earlier one, which a rollback could reach


def _tensorboard(run: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GONError("train.tensorboard needs the tensorboard package: pip install 'implicit-gon[tensorboard]'") from None
    return SummaryWriter(str(run / "tb"))


def fit(signal, cfg, run: str | Path, val_signal=None, progress: bool = True, overwrite: bool = False,
        dist: Dist = SINGLE, on_step=None, clock=None) -> GON:
    """Train a new GON on a Signal from a Config (the notebook entry point; `implicit-gon fit` calls this):

        gon = fit(image_signal(cfg.data, "train"), cfg, "runs/mnist-notebook")

    A run directory that already holds a checkpoint is refused, as on the command line; overwrite=True replaces
    that run (its checkpoint and metrics.jsonl). Under torchrun, dist says which rank this is; on_step as in
    train()."""
    from .distributed import broadcast_parameters, device_for
    from .rundir import check_out
    run = check_out(run)  # a path, not an existing file
    if dist.main:
        _claim_run(run, overwrite)
    torch.manual_seed(cfg.train.seed)  # initialisation; everything later draws from explicit generators
    meta = {**signal.meta(), "coord_dim": signal.coord_dim, "out_dim": signal.out_dim}
    if cfg.method.name == "glo":
        meta["train_samples"] = len(signal)  # one learned latent per training image
    gon = GON(cfg, meta, device_for(dist, cfg.train.device))
    if dist.main:
        (Path(run) / BEST).unlink(missing_ok=True)  # a new run: best weights of an earlier attempt here do not apply
    broadcast_parameters(gon.model, dist)
    train(gon, signal, run, val_signal, progress=progress, dist=dist, on_step=on_step, clock=clock)
    return gon
