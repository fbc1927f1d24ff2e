"""Signal adapters (images, audio, signed distance fields) and the image datasets they read.

The one registry of adapters is here: `register(kind, adapter)` makes a run whose meta["signal"] is `kind` use that
adapter (a signals.base.SignalAdapter, or its "module:attribute" path, imported on first use) in every verb of the
CLI and the Python API. It records into the engine's table (implicit_gon.plugins), so the engine finds adapters
without importing them. Importing this package imports nothing else: its names are loaded on first use (PEP 562),
so `import signals.datasets.idx` reads IDX files without torch."""
from __future__ import annotations

import importlib

from implicit_gon.plugins import register_signal, signal_adapter, signal_kinds


def register(kind: str, adapter) -> None:
    """Register the adapter of signal `kind` (a run's meta["signal"])."""
    register_signal(kind, adapter)


def adapter(kind: str):
    """The adapter registered for kind (a one-line GONError for an unknown one)."""
    return signal_adapter(kind)


register("images", f"{__name__}.image_verbs:ADAPTER")
register("audio", f"{__name__}.audio:ADAPTER")
register("sdf", f"{__name__}.sdf:ADAPTER")
SIGNALS = ("images", "audio", "sdf")
"""The signals shipped here (`config show` and `fit` know their configs)."""

_LAZY = {"Batch": "base", "Signal": "base", "SignalAdapter": "base", "ImageSignal": "images",
         "image_signal": "images", "task_signal": "images"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Batch", "Signal", "SignalAdapter", "ImageSignal", "image_signal", "task_signal", "SIGNALS", "register",
           "adapter", "signal_kinds"]
