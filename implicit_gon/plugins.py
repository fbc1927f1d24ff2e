"""Where the engine finds signal adapters without importing them (the engine imports no adapter).

An adapter package registers each kind it provides with `register_signal(kind, "module.path")` when imported;
the packages to import are named in the entry-point group `implicit_gon.plugins` (pyproject.toml), imported on
the first lookup of a kind not registered yet. An install whose metadata predates that group (an editable checkout
not reinstalled) falls back to the package shipped beside the engine."""
from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Iterator

from .errors import GONError, natural_list

GROUP = "implicit_gon.plugins"
SHIPPED = "signals"  # the adapters shipped with the engine, for installs without the entry point
_ADAPTERS: dict[str, Any] = {}  # kind -> the adapter, or the dotted path of its module until first used
_loaded = False


def register_signal(kind: str, adapter: Any) -> None:
    """Make `kind` (a run's meta["signal"]) resolve to adapter: an object (signals.base.SignalAdapter), or its
    "module:attribute" path, imported on first use."""
    _ADAPTERS[kind] = adapter


def signal_adapter(kind: str) -> Any:
    """The adapter registered for kind, its module imported on first use; unknown kinds are a GONError."""
    if kind not in _ADAPTERS:
        load_plugins()
    if kind not in _ADAPTERS:
        raise GONError(f"no signal adapter for {kind!r} (registered: {natural_list(sorted(_ADAPTERS)) or 'none'})")
    adapter = _ADAPTERS[kind]
    if isinstance(adapter, str):
        module, _, attr = adapter.partition(":")
        adapter = importlib.import_module(module)
        adapter = _ADAPTERS[kind] = getattr(adapter, attr) if attr else adapter
    return adapter


def signal_kinds() -> list[str]:
    load_plugins()
    return sorted(_ADAPTERS)


def fit_kinds() -> list[str]:
    """The kinds whose adapter says how `implicit-gon fit KIND` is given its data (its `fit_data`), in the order
    they were registered (each adapter is imported)."""
    load_plugins()
    return [kind for kind in list(_ADAPTERS) if getattr(signal_adapter(kind), "fit_data", "")]


class GivenAs(Sequence):
    """The kinds whose adapter's data are given to `fit` as `mode` ("dataset" or "files"): the `signals` of a
    config field that says how data is given (data.dataset, data.paths), read from the adapters when checked.
    `kind in` asks that kind's adapter alone."""

    def __init__(self, mode: str):
        self.mode = mode

    def __contains__(self, kind) -> bool:
        load_plugins()
        return kind in _ADAPTERS and getattr(signal_adapter(kind), "fit_data", "") == self.mode

    def _kinds(self) -> list[str]:
        load_plugins()
        return [kind for kind in list(_ADAPTERS) if kind in self]

    def __getitem__(self, i):
        return self._kinds()[i]

    def __len__(self) -> int:
        return len(self._kinds())

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())

    def __repr__(self) -> str:
        return repr(tuple(self))


def val_metrics(kind: str | None = None) -> dict[str, bool]:
    """The held-out metrics that runs of kind report (every registered kind's, in registration order, when None):
    name -> whether higher is better, as each adapter states them (its `val_metrics`)."""
    load_plugins()
    out: dict[str, bool] = {}
    for k in ([kind] if kind is not None else list(_ADAPTERS)):
        out.update({m: v for m, v in getattr(signal_adapter(k), "val_metrics", {}).items() if m not in out})
    return out


def load_plugins() -> None:
    """Import every package of the entry-point group once (each registers its kinds)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points
    names = [ep.value for ep in entry_points(group=GROUP)] or [SHIPPED]
    for name in names:
        mod = importlib.import_module(name)
        if not isinstance(mod, ModuleType):
            raise GONError(f"plug-in {name}: not a module")
