"""Every ``leadline`` command line the README and docs/ show names a command and options that exist:
a user copies them as written."""

from __future__ import annotations

import re
import tomllib

import click
import pytest

from leadline.cli import main
from leadline.load import parse_config
from tests.cli import ROOT, run_cli_sync

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


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_api_docs_name_every_operation_id():
    """docs/report.md listed eight of the document's operationIds; updateContact, listBlocked and
    unblock were left out, so a reader of the docs did not know the client's methods."""
    from leadline.api_document import build_document

    document = build_document()
    ids = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    listed = re.search(r"has an `operationId` \(([^)]*)\)", (ROOT / "docs" / "report.md").read_text())
    assert listed is not None
    assert set(re.findall(r"`(\w+)`", listed[1])) == ids


def test_the_readme_shows_a_config_problem_as_check_config_writes_it(tmp_path):
    """README showed `sources[2].token: missing`; check-config writes another sentence."""
    row = next(
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `leadline check-config")
    )
    shown_problem = re.search(r"with its key path \(`([^`]+)`", row)
    assert shown_problem is not None
    config = tmp_path / "config.toml"
    config.write_text('[[sources]]\nname = "site-form"\nprovider = "generic_form"\n')
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 3, result.output
    assert f"  {shown_problem[1]}\n" in result.output


def test_the_webflow_docs_show_a_config_for_each_kind_of_webhook_and_each_is_valid(monkeypatch):
    """docs/forms.md marked `secret` "required"; a Webflow source with only a `token` is valid and
    takes unsigned webhooks, as README's table says (`secret` (signed) or `token` (unsigned))."""
    section = _section((ROOT / "docs" / "forms.md").read_text(), "## Webflow")
    tables = re.findall(r"```toml\n(.*?)```", section, re.S)
    monkeypatch.setenv("LEADLINE_WEBFLOW_SECRET", "whsec-secret")
    monkeypatch.setenv("LEADLINE_WEBFLOW_TOKEN", "a-long-random-token")
    sources = [parse_config(tomllib.loads(table)).sources[0] for table in tables]
    assert sorted((s.secret is not None, s.token is not None) for s in sources) == [
        (False, True),
        (True, False),
    ]
    assert "required" not in section
