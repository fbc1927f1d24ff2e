"""`implicit-gon fit KIND`: a command for every registered signal adapter that says how its data is given
(signals/base.py SignalAdapter: fit_data, fit_help, fit_options), with the run options and the flags of the config
fields its runs read; implicit_gon.fitting.fit_run does the work."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import List, Optional

import typer

from .. import config as typed_config
from .fields import command, flags, option, run_options

HELP = ("Train a GON on images, audio or signed distance fields. Flags left out take their value from the dataset's "
        "config (configs/<signal>/<name>.yaml, shipped with the package), layered with --config files and --set; "
        "`implicit-gon config show images mnist` prints the resolved values.")


class FitGroup(typer.core.TyperGroup):
    """`fit`: its commands are built when first asked for, from the adapters registered then, so a signal
    registered after import (a plug-in, a test's toy) has one too, and `import cli` imports no adapter."""

    @property
    def commands(self):
        if self._pending:
            from ..plugins import fit_kinds
            self._pending = False
            for kind in fit_kinds():
                self._commands.setdefault(kind, fit_command(kind))
        return self._commands

    @commands.setter
    def commands(self, value) -> None:
        self._commands, self._pending = value, True


def fit_command(kind: str):
    """The click command `fit KIND`: how its data is given, the adapter's own options, the run options, and the
    flags of the fields its runs read."""
    from ..plugins import signal_adapter
    adapter, keys = signal_adapter(kind), typed_config.flag_keys(kind)
    own = [option(o.name, Optional[o.type], None, help=o.help) for o in adapter.fit_options]

    def fit(**kw):
        _fit(kind, keys, kw)
    fit.__doc__ = adapter.fit_help
    one = typer.Typer(add_completion=False)  # a Typer of one command is that command
    command(one, kind, kind, keys, *data_options(adapter), *own, *run_options())(fit)
    return typer.main.get_command(one)


def data_options(adapter) -> list[inspect.Parameter]:
    """How the data is given: a dataset's name, or files (arguments or --data) and held-out files (--val)."""
    if adapter.fit_data == "dataset":
        return [option("dataset", Optional[str], None,
                       help=f"Dataset name (`implicit-gon dataset list`; default {adapter.dataset}).")]
    one, many = adapter.file, adapter.files
    return [inspect.Parameter("paths", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[List[Path]],
                              default=typer.Argument(None, help=f"{many.capitalize()} or folders (searched "
                                                                f"recursively).")),
            option("data", Optional[List[Path]], None, "--data", help=f"{one.capitalize()} or folder (repeatable)."),
            option("val", Optional[List[Path]], None, "--val",
                   help=f"Held-out {many} (files or folders, repeatable); without it, --val-every holds out every "
                        f"tenth (with 2-9, the last).")]


def _fit(kind: str, keys: dict[str, str], kw: dict) -> None:
    """A fit command's arguments to implicit_gon.fitting.fit_run."""
    from ..fitting import fit_run
    from ..plugins import signal_adapter
    from ..progress import quiet
    own = {o.name: kw.pop(o.name) for o in signal_adapter(kind).fit_options}
    run = {k: kw.pop(k) for k in ("out", "config", "set_", "resume", "quiet")}
    data = {"dataset": kw.pop("dataset", None), "paths": (kw.pop("paths", None) or []) + (kw.pop("data", None) or []),
            "val": kw.pop("val", None)}
    with quiet(run["quiet"]):
        fit_run(kind, run["out"], **data, options=own, config=run["config"], flags=flags(keys, kw),
                sets=run["set_"], resume=run["resume"], progress=not run["quiet"])
