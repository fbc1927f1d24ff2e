"""Decoders and methods declare themselves here: each module registers a spec stating what it is and what it can
be combined with, and config validation, the API and `compare` read the specs instead of keeping lists.

This module imports no torch: the config reads it. The shipped plug-ins (siren.py, conv.py, methods/) are imported
on the first lookup; a plug-in defined elsewhere (a test, a user's module) registers by calling the functions below.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

BUILTIN = ("siren", "conv", "methods")  # modules of this package that register the shipped plug-ins on import


@dataclass(frozen=True)
class DecoderSpec:
    """A decoder F: how to build it for a run, and where it applies."""

    name: str
    """model.decoder's value."""
    build: Callable[[dict, Any], Any]
    """(run meta, ModelConfig) -> the torch module F."""
    signals: tuple[str, ...] | None = None
    """Signal kinds it can render (None: any)."""
    grid_sizes: tuple[int, ...] | None = None
    """Image resolutions it renders (None: any: F takes coordinates). A grid-only decoder renders its training grid."""
    reads: tuple[str, ...] = ()
    """Config fields it reads that are declared for another decoder (`reads="siren"`): a plug-in decoder states
    ("model.hidden", "model.layers") and takes --hidden and --layers, rather than needing fields of its own."""
    describe: Callable[[Any], str] | None = None
    """ModelConfig -> its size as a run's repr and memory refusals name it ("SIREN 4x256"; None: its name and the
    fields of `reads`)."""

    def size(self, model_cfg) -> str:
        if self.describe is not None:
            return self.describe(model_cfg)
        return " ".join([self.name, *(f"{k.split('.')[1]} {getattr(model_cfg, k.split('.')[1])}"
                                      for k in self.reads if k.startswith("model."))])


@dataclass(frozen=True)
class MethodSpec:
    """A way of finding latents, as `compare --methods` names it (a row of the paper's Table 1 or 2)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    """The config settings that make a run this method (method.name, gon.detach, model.variational, ...)."""
    decoders: tuple[str, ...] | None = None
    """Decoders it runs with (None: any)."""
    variational: bool = False
    """Trained on the ELBO and scored in bits/dim (Table 2), rather than on reconstruction error (Table 1)."""
    table: int | None = None
    """The paper table whose rows compare runs by default (1 or 2; None: only when named)."""
    implementation: Any = None
    """For a new method.name value: the module or object with attach, objective and encode (see methods/)."""
    whole_images: bool = False
    """Its encoder reads whole images, so train.points must be 1."""

    @property
    def method_name(self) -> str:
        return self.overrides.get("method.name", "gon")


_DECODERS: dict[str, DecoderSpec] = {}
_METHODS: dict[str, MethodSpec] = {}
_loaded = False


def register_decoder(spec: DecoderSpec) -> DecoderSpec:
    _DECODERS[spec.name] = spec
    return spec


def register_method(spec: MethodSpec) -> MethodSpec:
    _METHODS[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in BUILTIN:
            importlib.import_module(f"{__package__}.{name}")


def decoders() -> dict[str, DecoderSpec]:
    _load()
    return dict(_DECODERS)


def methods() -> dict[str, MethodSpec]:
    _load()
    return dict(_METHODS)


def decoder(name: str) -> DecoderSpec:
    return decoders()[name]


def method_names() -> list[str]:
    """method.name's values: the gradient origin and every registered implementation."""
    return list(dict.fromkeys(m.method_name for m in methods().values()))


def method_decoders(method_name: str) -> tuple[str, ...]:
    """The decoders a method.name runs with (those of the compare methods that use it)."""
    out: list[str] = []
    for m in methods().values():
        if m.method_name == method_name:
            out += m.decoders or list(decoders())
    return tuple(dict.fromkeys(out))


def implementation(method_name: str) -> Any:
    """The module implementing method.name (None for gon: the gradient step)."""
    for m in methods().values():
        if m.method_name == method_name and m.implementation is not None:
            return m.implementation
    return None


class Choices(Sequence):
    """A field's choices read from the registry when checked (the config is declared before plug-ins load)."""

    def __init__(self, names: Callable[[], Sequence[str]]):
        self._names = names

    def __getitem__(self, i):
        return list(self._names())[i]

    def __len__(self) -> int:
        return len(list(self._names()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names()))

    def __contains__(self, x) -> bool:
        return x in list(self._names())

    def __repr__(self) -> str:
        return repr(tuple(self))
