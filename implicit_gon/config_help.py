"""Help text for command-line flags that set config values: the field's docstring (one source for the meaning of
a value), plus where its default comes from. The docstrings are read from the source of the config's section
classes when first asked for (help being shown), never at import."""
from __future__ import annotations

import ast
import functools
import inspect
import textwrap

from . import config


@functools.lru_cache(maxsize=1)
def field_docs() -> dict[str, str]:
    """{"section.key": the field's docstring, whitespace joined} for every config field with one."""
    docs: dict[str, str] = {}
    for section, cls in config.sections().items():
        for klass in reversed(cls.__mro__[:-1]):  # a subclass's own docstrings win over its base's
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
            _class_docs(tree.body[0], section, docs)
    return docs


def _class_docs(cls: ast.ClassDef, section: str, docs: dict[str, str]) -> None:
    """Each annotated field followed by a string literal: the literal, whitespace joined."""
    body = cls.body
    for field, doc in zip(body, body[1:]):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(doc, ast.Expr) \
                and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            docs[f"{section}.{field.target.id}"] = " ".join(doc.value.value.split())


def flag_help(key: str, signal: str, text: str | None = None) -> str:
    """The help of a flag that sets config field `key` (e.g. "train.steps") for a `fit SIGNAL` command: `text`,
    else the field's docstring, and where its default comes from."""
    from .plugins import signal_adapter
    doc = text or field_docs().get(key, key)
    per_dataset = getattr(signal_adapter(signal), "fit_data", "") == "dataset"  # a dataset's name names its config
    where = "DATASET" if per_dataset else "default"
    scope = "resolved per dataset" if per_dataset else "from the shipped config"
    # parentheses, not brackets: typer's rich help would read [default: ...] as markup and drop it
    return f"{doc} (default: {scope}: {key} in `implicit-gon config show {signal} {where}`)"
