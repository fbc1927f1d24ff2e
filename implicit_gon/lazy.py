"""Modules loaded on first use, so that importing a signal adapter to build `implicit-gon fit KIND -h` (or any
usage error) does not spend seconds importing torch it will not touch."""
from __future__ import annotations

import functools
import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """`name` as a module whose code runs on its first attribute access (importlib.util.LazyLoader): the module
    object is in sys.modules at once, so a later plain `import name` anywhere gets the same one. Only for module
    globals: `from name import x` at the top of a file would load it at once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def no_grad(fn):
    """`@torch.no_grad()` for a module that imports torch lazily: torch is touched when fn runs, not when the
    module is imported."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        import torch
        with torch.no_grad():
            return fn(*args, **kwargs)
    return run
