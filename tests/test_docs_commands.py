"""Every ``leadline`` command line the README and docs/ show names a command and options that exist:
a user copies them as written."""

from __future__ import annotations

import re

import click
import pytest

from leadline.cli import main
from tests.cli import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: ``leadline CMD ...`` up to the end of its code span or line, a comment or a pipe.
LINE = re.compile(r"(?<![\w/-])leadline ([a-z][a-z-]+)((?: [^`\n#|]*)?)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")


def shown() -> list[tuple[str, str, str]]:
    found = []
    for path in DOCS:
        for name, rest in LINE.findall(path.read_text(encoding="utf-8")):
            for option in OPTION.findall(rest):
                found.append((path.name, name, option))
    return sorted(set(found))


def options(name: str) -> set[str] | None:
    with click.Context(main) as ctx:
        command = main.get_command(ctx, name)
    if command is None:
        return None
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


def test_the_docs_show_commands_with_options():
    assert len(shown()) > 30  # the pattern still finds what the docs show


@pytest.mark.parametrize(("doc", "name", "option"), shown())
def test_a_command_line_in_the_docs_runs_as_written(doc: str, name: str, option: str):
    known = options(name)
    assert known is not None, f"{doc}: `leadline {name}` is no command"
    assert option in known, f"{doc}: `leadline {name} {option}` — {name} has {sorted(known)}"
