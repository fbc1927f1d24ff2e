"""Checks of verb options (the ones that are not config fields: --n, --res, --frames, ...), one table, one rule
format (config.py's `min`/`max`/`gt`/`choices`/`pattern`), so every verb refuses a bad value with the same kind of
line and exit status 1 instead of a traceback or a silent reinterpretation (`--res 0`, `--n 0`). An option that
takes a config field's values (--batch-size, --device, ...) is checked by that field's declaration."""
from __future__ import annotations

import typing

from . import limits
from .config import check_value, field_of, range_of
from .errors import UsageError

MAX_RES = 1 << 20
"""The largest output side of any verb (render, decode, sample, interpolate, export-mesh --res)."""
FIELDS = {"batch_size": "train.batch_size", "sample_rate": "data.sample_rate", "device": "train.device",
          "camera": "data.camera"}
"""Options that take a config field's values: checked by that field's declaration (its type and range)."""
RULES: dict[str, dict] = {
    "n": {"min": 1, "max": limits.MAX_SAMPLES},
    "res": {"min": 1, "max": MAX_RES},
    "frames": {"min": 2, "max": limits.MAX_FRAMES},
    "fps": {"min": 1, "max": 240},
    "pairs": {"min": 1, "max": 1000},
    "hop": {"gt": 0},
    "index": {"min": 0},
    "temperature": {"min": 0, "max": 100},
    "seed": {"min": 0, "max": 2**63 - 1},
    "split": {"choices": ("train", "test")},
    "format": {"choices": ("ply", "obj", "glb", "stl")},
    "nrow": {"min": 1, "max": limits.MAX_SAMPLES},
    "seconds": {"gt": 0, "max": 3600},
    **{name: range_of(key) for name, key in FIELDS.items()},
}
VERB_RULES: dict[tuple[str, str], dict] = {
    ("export-mesh", "res"): {"min": 2, "max": MAX_RES},  # marching cubes needs two samples a side
}


def api_res(res, default: int, verb: str = "render", rules_of: str | None = None) -> int:
    """res= given to the API's render(z) or volume(z) (None: `default`), checked by the rule the CLI verb
    `rules_of` (default verb) applies to --res, else one line (0 is not "not given": an SDF render(z, res=0) drew
    at 256 px)."""
    if res is None:
        return default
    try:
        return check_value(res, int, VERB_RULES.get((rules_of or verb, "res"), RULES["res"]))
    except ValueError as e:
        raise UsageError(f"{verb} res = {res!r:.40}: {e}") from None


def option_type(name: str) -> typing.Any:
    """The type an option takes: its config field's (FIELDS), else its VerbOptions annotation."""
    if name in FIELDS:
        return field_of(FIELDS[name])[1]
    from .verbs import VerbOptions
    return typing.get_type_hints(VerbOptions)[name]


def check(verb: str, api: str | None = None, **values) -> dict[str, typing.Any]:
    """Check the given options of `verb` (None: not given), each by its type (option_type) and range; the first
    bad one is a one-line UsageError, naming the flag (`sample --n 0`), or the keyword of the Python method `api`
    (`GON.sample n=0`). Returns the values given, normalised (an integral float or a numpy integer becomes an int:
    the Python API takes them as the CLI's typed options would)."""
    out = {}
    for name, val in values.items():
        if val is None:
            continue
        rule, tp = VERB_RULES.get((verb, name), RULES[name]), option_type(name)
        try:
            out[name] = check_value(val, tp, rule)
        except ValueError as e:
            if api is not None:
                raise UsageError(f"{api} {name}={val!r:.60}: {e}") from None
            quoted = isinstance(val, str) and str not in (tp, *typing.get_args(tp))  # '8' where 8 is wanted
            raise UsageError(f"{verb} --{name.replace('_', '-')} {repr(val) if quoted else val}: {e}") from None
    return out
