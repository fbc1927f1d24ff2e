"""Help text for command-line flags that set config values: the field's own one-line docstring from
implicit_gon/config.py (one source for the meaning of a value), plus where its default comes from."""
from __future__ import annotations

import ast
import functools
import inspect

from . import config


@functools.lru_cache(maxsize=1)
def field_docs() -> dict[str, str]:
    """{"section.key": first sentence of the field's docstring} for every config field with one."""
    sections = {cls.__name__: name for name, cls in
                (("model", config.ModelConfig), ("gon", config.GONConfig), ("train", config.TrainConfig),
                 ("data", config.DataConfig), ("method", config.MethodConfig))}
    docs: dict[str, str] = {}
    for node in ast.parse(inspect.getsource(config)).body:
        if isinstance(node, ast.ClassDef) and node.name in sections:
            _class_docs(node, sections[node.name], docs)
    return docs


def _class_docs(cls: ast.ClassDef, section: str, docs: dict[str, str]) -> None:
    """Each annotated field followed by a string literal: the literal's first sentence."""
    body = cls.body
    for field, doc in zip(body, body[1:]):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(doc, ast.Expr) \
                and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            text = " ".join(doc.value.value.split())
            docs[f"{section}.{field.target.id}"] = text


def flag_help(key: str, signal: str, text: str | None = None) -> str:
    """The help of a flag that sets config field `key` (e.g. "train.steps") for a `fit SIGNAL` command: `text`,
    else the field's docstring, and where its default comes from."""
    doc = text or field_docs().get(key, key)
    where = "DATASET" if signal == "images" else "default"
    scope = "resolved per dataset" if signal == "images" else "from the shipped config"
    # parentheses, not brackets: typer's rich help would read [default: ...] as markup and drop it
    return f"{doc} (default: {scope}: {key} in `implicit-gon config show {signal} {where}`)"
