"""Which clips or meshes a run (or a folder) holds, numbered as the verbs number them: `implicit-gon dataset info
PATH`. An SDF run's `--index` (render, export-mesh, interpolate) counts its training meshes in this order, and
`eval` counts the files it scored (a run's held-out files when it has them) in the same way."""
from __future__ import annotations

import importlib
from pathlib import Path

from implicit_gon.errors import DataError

KINDS = {"audio": ("clips", "find_clips"), "sdf": ("meshes", "find_meshes")}
"""Signal -> (what its files are called, the adapter's function that finds them in path order)."""


def _find(signal: str, paths) -> list[str]:
    return [str(p) for p in getattr(importlib.import_module(f"signals.{signal}"), KINDS[signal][1])(paths)]


def run_files(cfg) -> dict[str, list[str]]:
    """{"training": files, "held out": files} of an audio or SDF run's config, each in the order the run holds them."""
    signal = cfg.data.signal
    return {"training": _find(signal, cfg.data.paths),
            "held out": _find(signal, cfg.data.val_paths) if cfg.data.val_paths else []}


def folder_files(path: Path) -> dict[str, list[str]]:
    """{signal: files} of the clips and meshes under path (a file or a folder), in the order a run fitted on it
    holds them; a DataError where there are none."""
    from signals.base import find_files
    found = {}
    for signal, (what, _) in KINDS.items():
        ext = importlib.import_module(f"signals.{signal}").EXTENSIONS
        if path.is_dir() or path.suffix.lower() in ext:
            try:
                found[signal] = [str(p) for p in find_files([path], ext, what)]
            except DataError:
                continue  # a folder without this kind of file
    if not found:
        raise DataError(f"{path}: no audio clips or meshes here, and not a run (a folder of images: `implicit-gon "
                        f"dataset info NAME --data-dir {path}`)")
    return found


def numbered(files: list[str]) -> list[str]:
    """'  0  name  (path)' lines, the index as the verbs count it."""
    width = len(str(max(len(files) - 1, 0)))
    return [f"  {i:>{width}}  {Path(f).name}  ({f})" for i, f in enumerate(files)]
