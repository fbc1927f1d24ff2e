"""Implicit Gradient Origin Networks (Bond-Taylor & Willcocks, ICLR 2021).

Names are imported on first use (PEP 562): `import implicit_gon.errors` or a dataset reader does not load the
trainer, and `from implicit_gon import GON` loads only what the API needs."""
from __future__ import annotations

import importlib

_LAZY = {"GON": "api", "fit_gaussian": "metrics", "slerp": "metrics", "Config": "config", "DataConfig": "config",
         "GONConfig": "config", "ModelConfig": "config", "TrainConfig": "config", "DataError": "errors",
         "GONError": "errors", "UsageError": "errors", "save_grid": "media", "show": "media", "Siren": "siren",
         "gon_latents": "step", "gon_objective": "step", "evaluate": "train", "fit": "train", "train": "train"}

__all__ = ["GON", "Config", "DataConfig", "GONConfig", "ModelConfig", "TrainConfig", "DataError", "GONError",
           "UsageError", "Siren", "gon_latents", "gon_objective", "fit_gaussian", "slerp", "fit", "train", "evaluate",
           "save_grid", "show"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        if module.__name__ == f"{__name__}.train":
            globals()["train"] = module.train  # the function, as before (importing the submodule bound the module)
        globals()[name] = getattr(module, name)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
