"""The import graph: the engine (implicit_gon) imports no adapter (signals, cli), no module imports itself back
through others, at module level or inside a function, and reading a dataset file does not load torch; and the
code's shape: no function of the engine or the adapters over 40 lines."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("implicit_gon", "signals")


def modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package) for every module of the engine, the adapters and cli.py."""
    out = {"cli": (root / "cli.py", False)}
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            parts = list(p.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, in functions too, except under `if TYPE_CHECKING:` (never executed)."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking(node):
            yield from (n for child in node.orelse for n in _imports(child))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _target(base: str, mods) -> str | None:
    while base and base not in mods:
        base = base.rpartition(".")[0]
    return base or None


def edges(name: str, mods) -> set[str]:
    """The project modules `name` imports anywhere in its file."""
    path, is_pkg = mods[name]
    pkg = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in _imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
            continue
        base = node.module or ""
        if node.level:
            up = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
            base = ".".join(up + ([node.module] if node.module else []))
        found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names}
    return {t for t in map(lambda m: _target(m, mods), found) if t and t != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root), on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w), on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: edges(m, mods) for m in mods}


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_engine_imports_no_adapter():
    bad = [(m, t) for m, ts in graph().items() if m.split(".")[0] == "implicit_gon" for t in ts
           if t.split(".")[0] in ("signals", "cli")]
    assert bad == []


def test_cycle_finder_finds_cycles(tmp_path):
    """The checks above can fail: a cycle through a function-local import and an engine -> adapter import."""
    (tmp_path / "implicit_gon").mkdir()
    (tmp_path / "signals").mkdir()
    (tmp_path / "cli.py").write_text("")
    (tmp_path / "implicit_gon" / "__init__.py").write_text("")
    (tmp_path / "implicit_gon" / "a.py").write_text("from . import b\n")
    (tmp_path / "implicit_gon" / "b.py").write_text("def f():\n    from .a import x\n    import signals.s\n")
    (tmp_path / "signals" / "__init__.py").write_text("from typing import TYPE_CHECKING\n"
                                                      "if TYPE_CHECKING:\n    from implicit_gon import a\n")
    (tmp_path / "signals" / "s.py").write_text("")
    mods = modules(tmp_path)
    g = {m: edges(m, mods) for m in mods}
    assert cycles(g) == [["implicit_gon.a", "implicit_gon.b"]]
    assert "signals.s" in g["implicit_gon.b"] and g["signals"] == set()


def test_reading_idx_does_not_load_torch():
    """A dataset reader loads neither torch nor the trainer (python -X importtime -c 'import signals.datasets.idx')."""
    code = ("import sys, signals.datasets.idx; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('implicit_gon.train')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_exports_resolve():
    code = ("import implicit_gon, signals; "
            "[getattr(implicit_gon, n) for n in implicit_gon.__all__]; [getattr(signals, n) for n in signals.__all__]; "
            "from implicit_gon import GON, slerp; print(callable(implicit_gon.train), GON.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "GON"]


def test_adapters_reach_no_engine_internals():
    """Adapters use the engine's public modules, not its task or method internals (views.py once imported
    implicit_gon.tasks.convert for luminance: it lives in implicit_gon.grids, which both share)."""
    bad = [(m, t) for m, ts in graph().items() if m.split(".")[0] == "signals" for t in ts
           if t.startswith(("implicit_gon.tasks", "implicit_gon.methods"))]
    assert bad == []


MAX_FUNCTION_LINES = 40
"""The style rule of docs/extending.md (issue 22): short functions, def line to last line, docstring included."""


def long_functions(root: Path = ROOT) -> list[tuple[int, str]]:
    """(lines, 'path::name') of every function or method of the engine and the adapters over MAX_FUNCTION_LINES."""
    out = []
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        out.append((lines, f"{p.relative_to(root)}::{node.name}"))
    return sorted(out, reverse=True)


def test_functions_are_short():
    assert long_functions() == []


def test_long_function_finder_finds_them(tmp_path):
    (tmp_path / "implicit_gon").mkdir()
    (tmp_path / "signals").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))  # the def line makes it one too many
    (tmp_path / "implicit_gon" / "a.py").write_text(f"class A:\n    def f(self):\n{body.replace('    ', '        ')}")
    (tmp_path / "signals" / "s.py").write_text(f"def g():\n{body[:-len(body.splitlines()[-1]) - 1]}")
    assert long_functions(tmp_path) == [(MAX_FUNCTION_LINES + 1, "implicit_gon/a.py::f")]


def test_fit_help_and_usage_errors_do_not_load_torch():
    """`fit KIND -h` builds every adapter's command (the adapters import torch lazily, implicit_gon/lazy.py), and a
    usage error is found before any tensor: neither loads torch, so both answer in well under a second."""
    code = ("import sys, cli\n"
            "for argv in (['fit', 'images', '-h'], ['fit', 'audio', '-h'], ['fit', 'sdf', '-h'], "
            "['fit', 'images', '--out', 'x', '--steps', 'many']):\n"
            "    try:\n        cli.main(argv)\n        print('exit 0')\n    except SystemExit as e:\n"
            "        print('exit', e.code)\n"
            "print('torch loaded', 'torch._C' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert [line for line in out.stdout.splitlines() if line.startswith(("exit", "torch"))] == \
        ["exit 0", "exit 0", "exit 0", "exit 2", "torch loaded False"]


def test_lazy_import_runs_the_module_on_first_use(tmp_path):
    """The module's code runs at its first attribute access, once, and a later plain import gets the same module."""
    (tmp_path / "probe_mod.py").write_text("print('ran')\nVALUE = 7\n")
    code = ("import sys\nfrom implicit_gon.lazy import lazy_import\n"
            "m = lazy_import('probe_mod')\nprint('imported')\nprint(m.VALUE)\n"
            "import probe_mod\nprint(probe_mod is m, probe_mod.VALUE)\n"
            "try:\n    lazy_import('no_such_module_here')\nexcept ModuleNotFoundError as e:\n    print('missing', e.name)")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["imported", "ran", "7", "True", "7", "missing", "no_such_module_here"]
