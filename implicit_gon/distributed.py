"""Data-parallel training on torch.distributed, launched by torchrun (the same command runs one process without it).

Every rank draws the same global batch from (seed, step), as a one-process run would, and keeps its own rows; the
gradients of the ranks' per-sample means are weighted by their share of the batch and summed (all_reduce), so N
processes take exactly the steps one process takes. Gradients are reduced by hand after backward rather than by
DistributedDataParallel, whose hooks do not follow the double backward of the gradient-origin step.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import GONError, Interrupted

TIMEOUT = datetime.timedelta(minutes=10)
"""How long a rank waits for the others at a collective before it gives up (a peer that hangs, not one that dies:
torchrun ends the group as soon as any rank exits with an error)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the group: rank, world size, and the device it trains on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, metrics and the progress bar."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of n: contiguous, sizes differing by at most one."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (self.rank < extra))

    def barrier(self) -> None:
        if self.active:
            with collective(self):
                dist.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (e.g. builds a dataset cache); the others run it once it is done."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()


SINGLE = Dist()


def from_env(device: str) -> Dist:
    """Join the group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR...), or
    stay a single process. nccl on CUDA, gloo on CPU; on CUDA each process takes the GPU of its local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    _end_quietly_on_sigterm(rank)
    return Dist(rank, world, local)


def device_for(d: Dist, device: str) -> str:
    """The device this rank trains on: its own GPU under torchrun, else the configured one."""
    if d.active and (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        return f"cuda:{d.local_rank}"
    return device


def _end_quietly_on_sigterm(rank: int) -> None:
    """torchrun sends SIGTERM to every rank both when it is itself stopped (a scheduler, Ctrl-C) and when another
    rank failed. Either way the rank stops as on a stop signal (interrupts): in training at the step's end, where
    rank 0 checkpoints and names the signal; a rank whose peer died learns it from the collective it waits in
    (`collective`: "another rank failed"). Outside the CLI (which installs them) the handlers are installed here."""
    from . import interrupts
    interrupts.install()


@contextlib.contextmanager
def collective(d: Dist):
    """A collective whose peer died (gloo: connection closed) becomes one line, not a traceback."""
    from . import interrupts
    try:
        yield
    except RuntimeError as e:
        signum = interrupts.pending() or interrupts.raised()
        if signum is not None:  # torchrun stopped every rank, and a peer left first: a stop, not a failure
            raise Interrupted(f"rank {d.rank}: interrupted by {signal.Signals(signum).name} (another rank stopped "
                              f"first); the last checkpoint is intact", 128 + signum) from None
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise GONError(f"rank {d.rank}: stopped because another rank failed ({reason}); the last checkpoint is "
                       f"intact") from None


def shard_batch(batch, d: Dist):
    """This rank's rows of a global Batch (values (B, N, C); coords shared (N, d) or per sample (B, N, d))."""
    if not d.active:
        return batch
    import dataclasses
    rows = d.rows(batch.values.shape[0])
    coords = batch.coords if batch.coords.dim() == 2 else batch.coords[rows]
    query = None if batch.query is None else shard_batch(batch.query, d)
    return dataclasses.replace(batch, coords=coords, values=batch.values[rows], query=query)


def reduce_gradients(model: torch.nn.Module, d: Dist, share: float) -> None:
    """Sum over ranks of each rank's gradient times its share of the global batch: the global batch's mean
    gradient. One flat all_reduce (parameters without a gradient count as zero, so every rank sends the same)."""
    if not d.active:
        return
    params = list(model.parameters())
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]) * share
    with collective(d):
        dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(model: torch.nn.Module, d: Dist) -> None:
    """Start every rank from rank 0's weights (they are seeded alike; this makes it so whatever the platform)."""
    if d.active:
        with collective(d):
            for t in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(t.data, 0)


def agree(d: Dist, reason: str | None, device) -> str | None:
    """Rank 0's decision to stop (early stopping and time budgets are judged there), made every rank's: all of
    them must leave the loop at the same step, or the others would wait at the next collective for ever."""
    if not d.active:
        return reason
    flag = torch.tensor([reason is not None], dtype=torch.int32, device=device)
    with collective(d):
        dist.broadcast(flag, 0)
    if not flag.item():
        return None
    return reason if d.main else "stopped with rank 0"


def agree_value(d: Dist, value: float, device) -> float:
    """Rank 0's value of a number every rank must share (the schedule's progress, which a time budget makes
    depend on each rank's clock)."""
    if not d.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    with collective(d):
        dist.broadcast(t, 0)
    return t.item()


def check_batch(global_batch: int, d: Dist) -> None:
    if d.active and global_batch < d.world:
        raise GONError(f"train.batch_size = {global_batch}: smaller than the {d.world} processes it is split over")


def shutdown(d: Dist) -> None:
    """Leave the group together: every rank waits here until rank 0 has written the run, then the group is
    destroyed. (The abort at the interpreter's exit that this barrier was once meant to stop is `leave`'s.)"""
    if d.active and dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError:
            pass  # a peer already gone: nothing left to wait for
        dist.destroy_process_group()


def leave(d: Dist) -> None:
    """End a rank's process once its work is written: gloo's worker threads can still abort the interpreter's
    own exit after destroy_process_group ("terminate called without an active exception", SIGABRT, about one run
    in twenty on a loaded 2-core machine; pytorch/pytorch#179291), so a rank flushes and exits at once."""
    if not d.active:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
