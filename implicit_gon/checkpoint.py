"""Checkpoints: one safetensors file holding the weights, the optimiser state, the latent Gaussian and, in its
metadata, the resolved config as JSON; plus RUN/config.json for people. Never pickled; written atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from .errors import GONError
from .fsio import atomic_path, write_json

CKPT = "checkpoint.safetensors"
BEST = "best.safetensors"  # the weights with the best held-out score (train.val_every), beside CKPT
FORMAT_VERSION = 1


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], str]:
    tensors = {}
    for pid, s in state["state"].items():
        for k, v in s.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"optim.{pid}.{k}"] = t.detach().cpu().contiguous()
    return tensors, json.dumps(state["param_groups"])


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: str) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        _, pid, k = name.split(".", 2)
        state.setdefault(int(pid), {})[k] = t
    return {"state": state, "param_groups": json.loads(groups)}


def save(run: str | Path, model: torch.nn.Module, info: dict[str, Any], optimizer_state: dict | None = None,
         extra: dict[str, torch.Tensor] | None = None, name: str = CKPT) -> Path:
    """Write RUN/checkpoint.safetensors (or RUN/name) and RUN/config.json. `info` holds config, meta, step
    (JSON-able); config.json always describes the last checkpoint, so writing BEST leaves it alone."""
    run = Path(run)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"info": json.dumps(info), "format": str(FORMAT_VERSION)}
    if optimizer_state is not None:
        opt_tensors, groups = _flatten_optimizer(optimizer_state)
        tensors.update(opt_tensors)
        metadata["optim_groups"] = groups
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    with atomic_path(run / name) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    if name == CKPT:
        write_json(run / "config.json", info)
    return run / name


def load(run: str | Path, name: str = CKPT) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict | None,
                                                     dict[str, torch.Tensor]]:
    """Returns (info, model state dict, optimiser state dict or None, extra tensors) of RUN/name."""
    path = Path(run) / name if Path(run).is_dir() else Path(run)
    if name == BEST and Path(run).is_dir() and (Path(run) / CKPT).is_file() and not path.is_file():
        raise GONError(f"{run}: no {BEST} (it is kept only when the run was validated during training: "
                       f"fit --val-every N); use --checkpoint last")
    if not path.is_file():
        raise GONError(f"{path}: no checkpoint here (expected a run directory written by `implicit-gon fit`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
        info = json.loads(metadata["info"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as e:
        raise GONError(f"{path}: not a readable implicit-gon checkpoint ({type(e).__name__})") from None
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    opt = None
    if "optim_groups" in metadata:
        opt = _unflatten_optimizer({k: v for k, v in tensors.items() if k.startswith("optim.")},
                                   metadata["optim_groups"])
    return info, model, opt, extra
