"""Documentation that is tested: every `implicit-gon ...` command quoted in README.md and docs/*.md names a verb
the app has and only options that verb takes (parsed with shlex against the click command typer builds)."""
import re
import shlex

import pytest
import typer

import cli
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(implicit-gon [^`]+)`")


def commands(text: str) -> list[str]:
    """The implicit-gon commands of a page: lines of its code blocks (continuations joined) and inline code."""
    found = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if "implicit-gon " in line and not line.lstrip().startswith(("#", "from ", "import ")):
                found.append(line[line.index("implicit-gon "):])
    found += INLINE.findall(FENCE.sub("", text))
    return found


def words(command: str) -> list[str]:
    """shlex words up to a comment, pipe or `&&`, brackets of optional parts dropped."""
    out = []
    for w in shlex.split(command, comments=True):
        if w in ("|", "&&", ";", ">", "2>"):
            break
        out.append(w.strip("[]"))
    return [w for w in out if w and w != "..."][1:]


def check(command: str) -> str | None:
    """None when the verb exists and takes every option given; else what is wrong."""
    cmd, args = typer.main.get_command(cli.app), words(command)
    while hasattr(cmd, "list_commands") and args and not args[0].startswith("-"):
        if args[0].isupper():  # a placeholder (VERB, SIGNAL)
            return None
        sub = cmd.get_command(cmd.context_class(cmd), args[0])
        if sub is None:
            return f"no verb {args[0]!r}"
        cmd, args = sub, args[1:]
    known = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    known |= {"-h", "--help"}
    for w in args:
        if w == "--":
            break
        if w.startswith("-") and len(w) > 1 and not w[1].isdigit() and w.split("=")[0] not in known:
            return f"{cmd.name} takes no {w.split('=')[0]}"
    return None


CASES = [(p.relative_to(REPO).as_posix(), c) for p in PAGES for c in commands(p.read_text())]


def test_the_docs_quote_commands():
    assert len(CASES) > 50 and any(page == "README.md" for page, _ in CASES)


@pytest.mark.parametrize("page, command", CASES)
def test_every_documented_command_parses(page, command):
    assert check(command) is None, f"{page}: {command}: {check(command)}"


def test_the_checker_catches_wrong_commands():
    assert check("implicit-gon fit images --dataset mnist --out r") is None
    assert "no verb" in check("implicit-gon fitt images")
    assert "--nope" in check("implicit-gon render runs/x --nope 3")
