"""Write docs/reference/cli.md and docs/reference/config.md from the code (run by `make docs`).

The CLI page walks the click command that typer builds from `cli.app` (every verb, argument and option with its
help); the configuration page walks the config dataclasses (`dataclasses.fields`: type, default, range from the
field's metadata), their docstrings (implicit_gon/config_help.py, the source flags' help uses) and the values each
shipped config file (configs/<signal>/<name>.yaml) sets. Nothing here depends on how cli.py or config.py are
organised inside."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import cli  # noqa: E402
from implicit_gon import config  # noqa: E402
from implicit_gon.config_help import field_docs  # noqa: E402

OUT = REPO / "docs" / "reference"


def commands(group: click.Command, path: tuple[str, ...] = ()):
    """(path, command) for every leaf command under group, in the order help lists them."""
    if hasattr(group, "list_commands"):  # a group (typer may vendor its own click: no isinstance checks)
        ctx = group.context_class(group)
        for name in group.list_commands(ctx):
            yield from commands(group.get_command(ctx, name), path + (name,))
    else:
        yield path, group


def param_row(p: click.Parameter) -> str:
    if p.param_type_name == "argument":
        name, kind = f"`{p.name.upper()}`", "argument"
    else:
        name, kind = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts), "flag" if getattr(p, "is_flag", False) else "option"
    text = " ".join((getattr(p, "help", None) or "").split()).replace("|", "\\|")
    default = "" if p.default in (None, False, ()) or callable(p.default) else f" (default: `{getattr(p.default, 'value', p.default)}`)"
    return f"| {name} | {kind} | {text}{default} |"


def cli_page() -> str:
    root = typer.main.get_command(cli.app)
    out = ["# CLI reference", "", "Generated from the typer app by `docs/gen_reference.py` (`make docs`); "
           "`implicit-gon VERB -h` prints the same.", ""]
    for path, cmd in commands(root):
        out += [f"## implicit-gon {' '.join(path)}", "", " ".join((cmd.help or "").split()), "",
                "| name | kind | help |", "|---|---|---|"]
        out += [param_row(p) for p in cmd.params if p.name != "help" and not getattr(p, "hidden", False)]
        out.append("")
    return "\n".join(out)


def sections() -> list[tuple[str, type]]:
    return [(f.name, f.default_factory) for f in dataclasses.fields(config.Config)]  # type: ignore[misc]


def value_range(f: dataclasses.Field) -> str:
    m = f.metadata
    parts = []
    if "choices" in m:
        parts.append(" \\| ".join(f"`{c}`" for c in m["choices"]))
    if "gt" in m:  # exclusive
        parts.append(f"> {m['gt']}" + (f", <= {m['max']}" if "max" in m else ""))
    elif "min" in m or "max" in m:
        parts.append(f"{m.get('min', '')} .. {m.get('max', '')}".strip())
    if "pattern" in m:
        parts.append(f"pattern `{m['pattern']}`")
    return "; ".join(parts)


def shipped() -> dict[str, dict]:
    """{"images/mnist": its YAML, "images/mnist (variational)": that section, ...} for every shipped config."""
    found = {}
    for p in sorted((REPO / "configs").glob("*/*.yaml")):
        doc = yaml.safe_load(p.read_text()) or {}
        name = f"{p.parent.name}/{p.stem}"
        found[name], extras = config.split_overlays(doc, str(p))  # config.OVERLAYS: conv, variational, ...
        for extra, sections in extras.items():
            if sections:
                found[f"{name} ({extra})"] = sections
    return found


def per_dataset(section: str, key: str, configs: dict[str, dict]) -> str:
    sets = [f"{name}: `{doc[section][key]}`" for name, doc in configs.items()
            if isinstance(doc.get(section), dict) and key in doc[section]]
    return "; ".join(sets)


def config_page() -> str:
    docs, configs = field_docs(), shipped()
    out = ["# Configuration reference", "", "Generated from `implicit_gon/config.py` by `docs/gen_reference.py` "
           "(`make docs`). Values flow from these defaults to the shipped config of the signal or dataset "
           "(`configs/<signal>/<name>.yaml`, listed per field), to `--config FILE`, to flags, to "
           "`--set section.key=value`. `implicit-gon config show SIGNAL NAME` prints a resolved config.", ""]
    for section, cls in sections():
        out += [f"## {section}", "", " ".join((cls.__doc__ or "").split()), "",
                "| field | type | default | range | shipped configs set | meaning |", "|---|---|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
            doc = docs.get(f"{section}.{f.name}", "").replace("|", "\\|")
            out.append(f"| `{section}.{f.name}` | `{f.type}` | `{default!r}` | {value_range(f)} | "
                       f"{per_dataset(section, f.name, configs)} | {doc} |")
        out.append("")
    return "\n".join(out)


def index_page() -> str:
    """The README, as the site's home page (its links point into docs/ from the repository root)."""
    text = (REPO / "README.md").read_text().replace("](docs/", "](")
    return text.replace("](reference/", "](reference/")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text.rstrip() + "\n")
    tmp.replace(path)


def main() -> None:
    write(OUT / "cli.md", cli_page())
    write(OUT / "config.md", config_page())
    write(REPO / "docs" / "index.md", index_page())


if __name__ == "__main__":
    main()
