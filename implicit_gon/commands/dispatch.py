"""A verb command's way to the run's adapter and back: its arguments become VerbOptions (checked once), the run
is loaded, implicit_gon.verbs.run_verb refuses what the run's signal does not read and runs the adapter's verb,
and the output is written and named on stderr."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

PARAM = {"input_": "inputs", "fmt": "format", "data": "paths"}
"""CLI parameters whose VerbOptions field is named otherwise."""
CLI_NAME = {"export": "export-mesh"}


class Which(str, Enum):
    """Which of a run's checkpoints a verb loads."""
    last = "last"
    best = "best"


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user set this parameter (on the command line or through the environment), not its default."""
    src = ctx.get_parameter_source(name)
    return src is not None and src.name in ("COMMANDLINE", "ENVIRONMENT")


def _params(name: str) -> list[str]:
    """The CLI parameters that set VerbOptions field `name`."""
    return [p for p, f in PARAM.items() if f == name] + ([name] if name == "paths" or name not in PARAM.values() else [])


def flag(ctx: typer.Context, name: str) -> str:
    """How the user spelled the option that sets `name` (--input, --format, or the argument's name)."""
    names = _params(name)
    name = next((p for p in names if given(ctx, p)), names[0])
    p = next(p for p in ctx.command.params if p.name == name)
    if p.param_type_name == "option":
        return p.opts[0]
    return p.name.upper()  # an argument, as help shows it (typer's own arguments have no human_readable_name)


def verb(name: str, args: dict, before=None):
    """A verb command's arguments (its locals()) as VerbOptions: check them, load the run, refuse what its signal
    does not read, check the output names, run the adapter's verb (after `before(gon)`, if given), write its
    output and say what was written."""
    from .. import GON, limits, options
    from ..verbs import VerbOptions, run_verb
    ctx, run, device, checkpoint, out = (args.pop(k, None) for k in ("ctx", "run", "device", "checkpoint", "out"))
    opts = {PARAM.get(k, k): v for k, v in args.items() if k not in ("paths", "as_json", "refit")}
    options.check(CLI_NAME.get(name, name), device=device,
                  **{k: (v.lower() if k == "format" and v else v) for k, v in opts.items() if k in options.RULES})
    gon = GON.load(run, device, which=Which(checkpoint or Which.last).value)
    if "batch_size" in opts:
        opts["batch_size"] = limits.encode_batch(gon, opts["batch_size"])  # latents do not depend on it
    was_given = frozenset(k for k in opts if any(given(ctx, p) for p in _params(k)))
    o = VerbOptions(**opts, out=out, given=was_given)
    output = run_verb(gon, name, o, flag=lambda field: flag(ctx, field), before=before)
    if name != "eval":
        write(output, out)
    return output


def write(output, out: Optional[Path]) -> None:
    """Save a verb's output to out (if it writes one), then its notes and the 'wrote' lines on stderr."""
    from .. import rundir
    from ..verbs import print_notes
    lines = []
    if output.save is not None and out:
        with rundir.writing_into(out):
            lines = output.save(out)
    print_notes(output.notes)
    for line in lines:
        print(f"wrote {line}", file=sys.stderr)


def report(res: dict, as_json: bool, notes=()) -> None:
    """The human table (on stderr when --json, so stdout holds only the JSON document)."""
    for line in notes:
        print(line, file=sys.stderr)
    table = sys.stderr if as_json else sys.stdout
    for k, v in res.items():
        if k == "shapes":
            for s in v:
                print("  " + "  ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in s.items()),
                      file=table)
            continue
        print(f"{k:>14}: {v:.6g}" if isinstance(v, float) else f"{k:>14}: {v}", file=table)
    if as_json:
        from ..fsio import finite_json
        print(json.dumps(finite_json(res), allow_nan=False))
