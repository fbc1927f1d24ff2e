"""Signal adapters (images, audio, signed distance fields) and the image datasets they read.

Importing this package registers the three kinds with the engine (implicit_gon.plugins) and imports nothing else:
its names are loaded on first use (PEP 562), so `import signals.datasets.idx` reads IDX files without torch."""
from __future__ import annotations

import importlib

from implicit_gon.plugins import register_signal

SIGNALS = ("images", "audio", "sdf")
for _kind in SIGNALS:
    register_signal(_kind, f"{__name__}.{_kind}")

_LAZY = {"Batch": "base", "Signal": "base", "ImageSignal": "images", "image_signal": "images",
         "task_signal": "images"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Batch", "Signal", "ImageSignal", "image_signal", "task_signal", "SIGNALS"]
