"""Checkpoints: one safetensors file holding the weights, the optimiser state, the latent Gaussian and, in its
metadata, the resolved config as JSON; plus RUN/config.json for people. Never pickled; written atomically.

The metadata holds a sha256 over every tensor (name, dtype, shape, bytes, in name order) and every other metadata
entry, checked on load, so a flipped bit in the weights or the header is a one-line error rather than a silently
different model or a silently dropped Adam state. The format version is checked: a newer or unknown one is refused."""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file

from . import jsonio, limits
from .errors import GONError, UsageError, natural_list
from .guard import OPENING, WINDOW, check_finite
from .fsio import as_path, atomic_path, write_json
from .rundir import BEST, CKPT, checkpoint_step  # noqa: F401 (CKPT and BEST are used here and re-exported)

FORMAT_VERSION = 2
READS = (1, 2)  # format 1 had no checksum
_NOTED_LEGACY: set = set()


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], str]:
    tensors = {}
    for pid, s in state["state"].items():
        for k, v in s.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"optim.{pid}.{k}"] = t.detach().cpu().contiguous()
    return tensors, json.dumps(state["param_groups"])


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        _, pid, k = name.split(".", 2)
        state.setdefault(int(pid), {})[k] = t
    return {"state": state, "param_groups": groups}


def checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """sha256 over the tensors (name, dtype, shape, raw bytes; in name order) and the other metadata entries."""
    h = hashlib.sha256()
    for k in sorted(metadata):
        if k != "sha256":
            h.update(json.dumps([k, metadata[k]]).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(run: str | Path, model: torch.nn.Module, info: dict[str, Any], optimizer_state: dict | None = None,
         extra: dict[str, torch.Tensor] | None = None, name: str = CKPT, keep: int = 1) -> Path:
    """Write RUN/config.json, then RUN/checkpoint.safetensors (so config.json never lags the checkpoint it
    describes), or RUN/name alone: config.json describes the last checkpoint, so writing BEST leaves it alone.
    `info` holds config, meta, step (JSON-able). Any NaN or infinity in what would be written is a NonFinite error
    and nothing is written; the checkpoint being replaced is kept as checkpoint-STEP (keep in all, see previous)."""
    run = Path(run)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"info": json.dumps(info), "format": str(FORMAT_VERSION)}
    if optimizer_state is not None:
        opt_tensors, groups = _flatten_optimizer(optimizer_state)
        tensors.update(opt_tensors)
        metadata["optim_groups"] = groups
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    check_finite(tensors, f"{name} not written")  # a diverged state never replaces a good checkpoint
    metadata["sha256"] = checksum(tensors, metadata)
    if name == CKPT:
        write_json(run / "config.json", info)
        _keep_previous(run, keep, info.get("step"))
    with atomic_path(run / name) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return run / name


def previous(run: str | Path) -> list[Path]:
    """RUN's earlier checkpoints (checkpoint-STEP.safetensors), oldest first."""
    return [p for _, p in previous_steps(run)]


def previous_steps(run: str | Path) -> list[tuple[int, Path]]:
    """(STEP, path) of RUN's earlier checkpoints, oldest first."""
    found = []
    for p in Path(run).glob("checkpoint-*.safetensors"):
        step = p.name[len("checkpoint-"):-len(".safetensors")]
        if step.isdigit():
            found.append((int(step), p))
    return sorted(found)


def _keep_previous(run: Path, keep: int, new_step: int) -> None:
    """Before RUN/checkpoint.safetensors is replaced, keep it as checkpoint-STEP.safetensors (a hard link: no copy)
    and remove the oldest, so keep checkpoints in all stay on disk."""
    step = checkpoint_step(run) if keep > 1 else None
    if step is not None and step != new_step:
        kept = run / f"checkpoint-{step:09d}.safetensors"
        with atomic_path(kept) as tmp:
            tmp.unlink()
            os.link(run / CKPT, tmp)
    older = previous(run)
    for old in older[:max(0, len(older) - (keep - 1))]:
        old.unlink(missing_ok=True)


MAX_HEADER = 100 << 20  # bytes of a safetensors header (safetensors' own limit)


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors from one open file. A `fit` renames each new checkpoint over the old one;
    safetensors' own loaders go back to the path after opening it (safe_open's tensors too: 59 of 31,798
    loads of a training run paired one checkpoint's checksum with the next one's weights), one fd cannot.
    The header is read and checked first: the file must be exactly as long as its tensors' offsets say, and fit
    the memory budget, before its bytes are read (a 3 GB junk file is refused from its first bytes)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = _header(path, f, size)
            limits.check(f"reading the checkpoint {path} ({size:,} bytes)", 2 * size)
            f.seek(0)
            data = f.read()
        tensors = load_bytes(data)  # checks the header and the data offsets again
    except OSError as e:
        raise GONError(f"{path}: cannot read the checkpoint ({e.strerror})") from None
    except GONError:
        raise
    except Exception as e:  # safetensors raises several types for a corrupt header or truncated data
        raise GONError(f"{path}: not a readable implicit-gon checkpoint ({type(e).__name__})") from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise GONError(f"{path}: not a readable implicit-gon checkpoint (metadata is not a map of strings)")
    return meta, tensors


def _header(path: Path, f, size: int) -> dict:
    """The safetensors header (8-byte little-endian length, then JSON), checked against the file's size."""
    bad = f"{path}: not a readable implicit-gon checkpoint"
    head = f.read(8)
    (n,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
    if not 2 <= n <= min(MAX_HEADER, size - 8):
        raise GONError(f"{bad} (its header length {n} does not fit the file's {size:,} bytes)")
    header = jsonio.loads(f.read(n), f"{path}: header", MAX_HEADER, max_depth=8)
    if not isinstance(header, dict):
        raise GONError(f"{bad} (header)")
    ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    end = max((e for e in ends if isinstance(e, int)), default=0)
    if len(ends) != len(header) - ("__metadata__" in header) or 8 + n + end != size:
        raise GONError(f"{bad} (the file is {size:,} bytes, its header describes {8 + n + end:,})")
    return header


def _check_format(path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    fmt = metadata.get("format", "")
    if not fmt.isdigit() or int(fmt) not in READS:
        newer = fmt.isdigit() and int(fmt) > FORMAT_VERSION
        raise GONError(f"{path}: checkpoint format {fmt!r:.20} is " + ("newer than this implicit-gon reads "
                       "(upgrade it)" if newer else f"unknown (this implicit-gon reads {', '.join(map(str, READS))})"))
    if int(fmt) == 1 and path not in _NOTED_LEGACY:  # written before checksums: readable, but unverifiable
        _NOTED_LEGACY.add(path)
        from .progress import say
        say(f"note: {path}: format 1 (before checksums), so corruption cannot be detected; the next checkpoint "
            f"this run writes carries one")
    if int(fmt) >= 2 and metadata.get("sha256") != checksum(tensors, metadata):
        raise GONError(f"{path}: checksum mismatch: the checkpoint is corrupt (flipped or truncated bytes)")


def load(run: str | Path, name: str = CKPT) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict | None,
                                                     dict[str, torch.Tensor]]:
    """Returns (info, model state dict, optimiser state dict or None, extra tensors) of RUN/name, verified and
    checked."""
    run = as_path(run, "run")
    path = run / name if run.is_dir() else run
    if name == BEST and run.is_dir() and (run / CKPT).is_file() and not path.is_file():
        raise UsageError(f"{run}: no {BEST} (it is kept only when the run was validated during training: "
                         f"fit --val-every N); use --checkpoint last (in Python, GON.load(run))")
    if not path.is_file():  # a folder without one is named as the folder, as a missing one is
        raise GONError(f"{run}: no checkpoint here (expected a run directory written by `implicit-gon fit`)")
    metadata, tensors = _read(path)
    _check_format(path, metadata, tensors)
    try:
        info = jsonio.loads(metadata["info"], f"{path}: metadata info")
        opt_groups = jsonio.loads(metadata["optim_groups"], f"{path}: metadata optim_groups") \
            if "optim_groups" in metadata else None
    except KeyError:
        raise GONError(f"{path}: not a readable implicit-gon checkpoint (metadata)") from None
    check_info(info, str(path))
    _check_dtypes(path, tensors)
    check_finite(tensors, f"{path}: not finite, refused")  # a run that diverged (before the guard wrote this) renders noise
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    opt = None
    if opt_groups is not None:
        optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
        _check_optimizer(path, optim, opt_groups)
        opt = _unflatten_optimizer(optim, opt_groups)
    return info, model, opt, extra


FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _check_dtypes(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Floating tensors only (BatchNorm's step count an int64): a float8 weight failed in isfinite with a traceback,
    and int32 or bool weights were cast into the model silently."""
    for name, t in tensors.items():
        want = (torch.int64,) if name.endswith("num_batches_tracked") else FLOATS
        if t.dtype not in want:
            raise GONError(f"{path}: tensor {name} is {str(t.dtype).replace('torch.', '')}, not "
                           f"{natural_list([str(d).replace('torch.', '') for d in want], 'or')}")


ADAM_STATE = {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def _check_optimizer(path: Path, tensors: dict[str, torch.Tensor], groups: Any) -> None:
    """Adam's settings and state as Adam can use them: a crafted lr -1, betas [2, 5] or step -5 was a RuntimeError
    at the first step, a negative second moment a 'divergence' blamed on the learning rate."""
    bad = f"{path}: optimiser state"
    if not isinstance(groups, list) or not 1 <= len(groups) <= 64 or not all(isinstance(g, dict) for g in groups):
        raise GONError(f"{bad}: optim_groups is not a list of 1..64 parameter groups")
    for g in groups:
        betas = g.get("betas")
        if not (_finite(g.get("lr")) and g["lr"] > 0 and _finite(g.get("eps")) and g["eps"] > 0
                and _finite(g.get("weight_decay", 0)) and g.get("weight_decay", 0) >= 0 and isinstance(betas, list)
                and len(betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in betas)):
            raise GONError(f"{bad}: a parameter group's lr, betas, eps or weight_decay is out of range "
                           f"({ {k: g.get(k) for k in ('lr', 'betas', 'eps', 'weight_decay')} })")
    for name, t in tensors.items():
        _, pid, key = (name.split(".", 2) + ["", ""])[:3]
        if not pid.isdigit() or key not in ADAM_STATE:
            raise GONError(f"{bad}: unknown entry {name!r:.60}")
        if key in ("step", "exp_avg_sq", "max_exp_avg_sq") and t.numel() and float(t.min()) < 0:
            raise GONError(f"{bad}: {name} is negative")


MAX_TRAIN_SAMPLES = 10**8


def check_info(info: Any, source: str) -> dict[str, Any]:
    """A checkpoint's info (config, meta, step), every value checked: one-line GONError naming the checkpoint."""
    from .config import Config
    if not isinstance(info, dict) or not isinstance(info.get("meta"), dict) or not isinstance(info.get("config"), dict):
        raise GONError(f"{source}: checkpoint metadata is not a mapping of config, meta and step")
    step = info.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise GONError(f"{source}: checkpoint step = {step!r:.40}: must be a non-negative integer")
    Config.from_dict(info["config"], source)
    _check_meta(info["meta"], source)
    _check_train_state(info.get("train_state"), source)
    return info


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


# what a run's train_state may hold: key -> check of its value (absent keys are fine: older runs lack some)
_TRAIN_STATE = {
    "elapsed": lambda v: _finite(v) and v >= 0, "lr_scale": lambda v: _finite(v) and 0 < v <= 1,
    "rollbacks": _count, "precision": lambda v: isinstance(v, str) and len(v) < 32,
    "early_stop": lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("metric"), str)
                                          and (v.get("best") is None or _finite(v["best"]))
                                          and (v.get("best_step") is None or _count(v["best_step"]))
                                          and _count(v.get("bad", 0))),
    "guard": lambda v: _drift_state(v) and (v.get("first") is None or _finite(v["first"]))
    and _finite_list(v.get("opening", []), OPENING) and ("grad" not in v or _drift_state(v["grad"])),
}


def _finite_list(v: Any, most: int) -> bool:
    return isinstance(v, list) and len(v) <= most and all(_finite(x) for x in v)


def _drift_state(v: Any) -> bool:
    """A divergence guard's state (guard._Drift): its window (at most WINDOW finite values), its lowest median,
    first value and scale (finite or None) and their steps (counts or None)."""
    return isinstance(v, dict) and _finite_list(v.get("recent", []), WINDOW) \
        and all(v.get(k) is None or _finite(v[k]) for k in ("lowest", "start", "scale")) \
        and all(v.get(k) is None or _count(v[k]) for k in ("lowest_step", "start_step"))


def _check_train_state(ts: Any, source: str) -> None:
    """train_state (what --resume needs besides weights): a mapping whose known entries have their types and
    ranges (a crafted 'elapsed' of 'abc' or a negative rollback count is one line here, not a traceback later)."""
    if ts is None:
        return
    if not isinstance(ts, dict):
        raise GONError(f"{source}: checkpoint train_state = {ts!r:.40}: must be a mapping")
    for key, ok in _TRAIN_STATE.items():
        if key in ts and not ok(ts[key]):
            raise GONError(f"{source}: checkpoint train_state.{key} = {ts[key]!r:.40}: not a valid value")


def _check_meta(meta: dict, source: str) -> None:
    """The run's meta: its signal's own entries checked by the signal's adapter (signals/base.py check_meta),
    coord_dim, out_dim, train_samples and channels here."""
    from .plugins import signal_adapter, signal_kinds
    signal = meta.get("signal")
    try:
        adapter = signal_adapter(signal) if isinstance(signal, str) else None
    except GONError:
        adapter = None
    if adapter is None:
        raise GONError(f"{source}: meta.signal = {signal!r:.40}: choose one of {natural_list(signal_kinds(), 'or')}")
    adapter.check_meta(meta, source)
    counts = {"coord_dim": (adapter.coord_dim, adapter.coord_dim, False), "out_dim": (1, 64, False),
              "train_samples": (1, MAX_TRAIN_SAMPLES, True)}  # (lowest, highest, optional); GLO's latent count
    for key, (lo, hi, optional) in counts.items():
        v = meta.get(key)
        if v is None and optional:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise GONError(f"{source}: meta.{key} = {v!r:.40}: must be an integer {lo}..{hi}")
    channels = meta.get("channels")
    if channels is not None and meta["out_dim"] != channels:
        raise GONError(f"{source}: meta.out_dim = {meta['out_dim']} differs from meta.channels = {channels}")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
