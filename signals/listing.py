"""Which clips or meshes a run (or a folder) holds, numbered as the verbs number them: `implicit-gon dataset info
PATH`. An SDF run's `--index` (render, export-mesh, interpolate) counts its training meshes in this order, and
`eval` counts the files it scored (a run's held-out files when it has them) in the same way. The signals whose
runs read files are the registered adapters that declare `files` (signals/base.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from implicit_gon.errors import DataError
from implicit_gon.plugins import signal_adapter, signal_kinds


def _file_adapters() -> dict:
    """{signal: adapter} of the registered signals whose runs read files (clips, meshes)."""
    return {k: a for k in signal_kinds() if (a := signal_adapter(k)).files}


def run_files(cfg) -> dict[str, list[str]]:
    """{"training": files, "held out": files} of an audio or SDF run's config, each in the order the run holds them."""
    find = signal_adapter(cfg.data.signal).find
    return {"training": [str(p) for p in find(cfg.data.paths)],
            "held out": [str(p) for p in find(cfg.data.val_paths)] if cfg.data.val_paths else []}


def folder_files(path: Path) -> dict[str, list[str]]:
    """{signal: files} of the clips and meshes under path (a file or a folder), in the order a run fitted on it
    holds them; a DataError where there are none."""
    found = {}
    for signal, adapter in _file_adapters().items():
        if path.is_dir() or path.suffix.lower() in adapter.extensions:
            try:
                found[signal] = [str(p) for p in adapter.find([path])]
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


def print_files(path: Path, as_json: bool) -> None:
    """`dataset info` of a run or a folder: its clips or meshes, numbered as the verbs number them (with --json,
    the lines on stderr and a JSON document on stdout)."""
    from implicit_gon import GON
    from implicit_gon.checkpoint import CKPT
    to = sys.stderr if as_json else sys.stdout
    if not (path / CKPT).is_file():
        found = folder_files(path)
        for signal, files in found.items():
            uses = "; ".join(u for u in signal_adapter(signal).file_uses if u)
            print(f"{path}: {len(files)} {signal_adapter(signal).files}, numbered as a run fitted on them numbers "
                  f"them ({uses}; a fit with --val-every holds out every tenth: `dataset info RUN` lists the run's "
                  f"own)", file=to)
            print("\n".join(numbered(files)), file=to)
        if as_json:
            print(json.dumps(found))
        return
    gon = GON.load(path, "cpu")
    if not signal_adapter(gon.meta["signal"]).files:  # a run on a dataset (images)
        d = gon.cfg.data.dataset
        print(f"{path}: an image run on dataset {d}: `implicit-gon dataset info {d}` counts its splits "
              f"(interpolate --from/--to index its test split)", file=to)
        if as_json:
            print(json.dumps({"signal": gon.meta["signal"], "dataset": d}))
        return
    _print_run_files(path, gon.cfg, as_json)


def _print_run_files(path: Path, cfg, as_json: bool) -> None:
    files, adapter = run_files(cfg), signal_adapter(cfg.data.signal)
    index, scored = adapter.file_uses
    uses = [index] + ([] if files["held out"] else [scored])
    to = sys.stderr if as_json else sys.stdout
    print(f"{path}: {len(files['training'])} training {adapter.files} ({'; '.join(u for u in uses if u)}):", file=to)
    print("\n".join(numbered(files["training"])), file=to)
    if files["held out"]:
        print(f"{len(files['held out'])} held-out {adapter.files} ({scored}):", file=to)
        print("\n".join(numbered(files["held out"])), file=to)
    if as_json:
        print(json.dumps({"signal": cfg.data.signal, **files}))
