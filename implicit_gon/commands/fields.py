"""Options that are assembled, not written: a fit command (or compare) takes an option for every config field
whose declaration gives it a flag for that signal (metadata `flag`, `signals`, `on` in implicit_gon/config.py), so
a field with a flag appears on the right commands with no edit to the CLI, and is refused (unknown option)
elsewhere. Their help is the field's docstring, read from config.py the first time help is shown."""
from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import List, Optional

import typer

from .. import config as typed_config

CONFIG_HELP = ("YAML layered on top of the dataset's shipped config (repeatable; later files win). "
               "`implicit-gon config show` prints the result.")
SET_HELP = "Any config field as section.key=value, applied last (repeatable), e.g. --set train.log_every=5."


def option(name: str, tp, default, *decls: str, help: Optional[str] = None, **kw) -> inspect.Parameter:
    """A typer option as a keyword parameter of a built signature (the fit commands are assembled, not written)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=typer.Option(default, *decls, help=help,
                                                                                        **kw), annotation=tp)


def run_options() -> list[inspect.Parameter]:
    """The options of every fit command that are not config fields."""
    return [option("out", Path, ..., help="Run directory (checkpoints, metrics)."),
            option("config", Optional[List[Path]], None, help=CONFIG_HELP),
            option("set_", Optional[List[str]], None, "--set", help=SET_HELP),
            option("resume", bool, False, "--resume", help="Continue the run in --out."),
            option("quiet", bool, False, "--quiet",
                   help="Print only warnings and errors (no progress bar, notes or summary).")]


def param_name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def field_options(keys: dict[str, str]) -> list[inspect.Parameter]:
    """An option for each config field of keys ({flag: "section.key"}): the field's flag, its type (text where the
    field parses its flag); None when not given, so the YAML or the default stands."""
    out = []
    for flag, key in keys.items():
        f, tp = typed_config.field_of(key)
        tp = str if "parse" in f.metadata else next((a for a in typing.get_args(tp) if a is not type(None)), tp)
        out.append(option(param_name(flag), Optional[tp], None, f.metadata["flag"],
                          rich_help_panel=f"Config: {key.split('.')[0]}"))  # grouped by section
    return out


class FieldOption(typer.core.TyperOption):
    """An option that sets a config field: its help is the field's docstring (and where its default comes from),
    read from config.py the first time help is shown, never at import."""

    key = signal = ""

    @property
    def help(self) -> str:
        from ..config_help import flag_help
        return flag_help(self.key, self.signal)

    @help.setter
    def help(self, text) -> None:  # click sets it on construction; the field's docstring stands instead
        pass


class FieldCommand(typer.core.TyperCommand):
    """A command whose config-field options (`keys`, {flag: key}) document themselves (FieldOption), their
    defaults resolved as for a run of `signal`."""

    signal, keys = "images", {}

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        for p in self.params:
            if p.opts and p.opts[0] in self.keys:
                p.__class__, p.key, p.signal = FieldOption, self.keys[p.opts[0]], self.signal


def command(group: typer.Typer, name: str, signal: str, keys: dict[str, str], *own: inspect.Parameter):
    """Register the decorated function as command `name` of group, taking its own options and an option for each
    config field of keys ({flag: key})."""
    def register(callback):
        params = [*own, *field_options(keys)]
        assert len({p.name for p in params}) == len(params), f"{name}: a flag named twice"
        callback.__signature__ = inspect.Signature(params)
        cls = type("FieldCommand", (FieldCommand,), {"signal": signal, "keys": keys})
        return group.command(name, cls=cls)(callback)
    return register


def flags(keys: dict[str, str], kw: dict) -> dict:
    """A command's config-field options ({flag: key}) as dotted keys (None: not given), each flag's text parsed
    where its field says how (--max-time 4m)."""
    out = {}
    for flag, key in keys.items():
        val, parse = kw.get(param_name(flag)), typed_config.field_of(key)[0].metadata.get("parse")
        out[key] = parse(val) if parse is not None and val is not None else val
    return out
