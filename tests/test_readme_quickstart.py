"""The README's first steps, run as written: each block of output it shows is what the commands print."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli import ROOT, free_port, start_serve, terminal

#: A time as the commands print it; the README's were pasted from one run, so times differ.
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?")


def section(readme: str, title: str) -> str:
    start = readme.index(f"## {title}")
    return readme[start : readme.index("\n## ", start + 1)]


def blocks(text: str, language: str = "") -> list[str]:
    """The fenced blocks of ``language`` (none: the output a command prints), in order."""
    found: list[str] = []
    current: list[str] | None = None
    kind = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("```") and current is None:
            current, kind = [], line[3:].strip()
        elif line.rstrip() == "```" and current is not None:
            if kind == language:
                found.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return found


def commands(block: str) -> list[str]:
    """The block's shell commands, a line ending in a backslash joined to the next."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def same(text: str) -> str:
    return TIME.sub("<time>", text)


def run(command: str) -> str:
    return subprocess.run(
        ["bash", "-c", command], check=True, capture_output=True, text=True, timeout=120
    ).stdout


async def test_the_quick_start_prints_what_the_readme_shows(tmp_path: Path):
    readme = (ROOT / "README.md").read_text()
    setup, tried = section(readme, "Set-up"), section(readme, "Try it")
    [started] = blocks(setup)
    [sh] = blocks(tried, "sh")
    contacts_shown, journal_shown = blocks(tried)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.example.toml").read_text().replace("port = 8080", f"port = {port}"))
    mine = {
        "8080": str(port),
        ".venv/bin/leadline": f"{sys.executable} -m leadline",
        "config.example.toml": str(config),
    }
    lines = commands(sh)
    for old, new in mine.items():
        lines = [line.replace(old, new) for line in lines]

    # The README's reader runs it in a terminal, which is where the tokens are shown.
    with terminal() as (stdout, printed_so_far):
        proc = await start_serve(config, port, stdout=stdout)
        try:
            outputs = [await asyncio.to_thread(run, line) for line in lines]
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=90)
        printed = printed_so_far()

    assert len(outputs) == 5
    assert [out.splitlines()[0] for out in outputs[:3]] == ["HTTP/1.1 200 OK"] * 2 + [
        "HTTP/1.1 401 Unauthorized"
    ]
    assert outputs[2].endswith("\n\nwrong token\n")
    assert same(outputs[3]) == same(contacts_shown)
    assert same(outputs[4]) == same(journal_shown)
    printed = printed.replace(str(port), "8080")
    printed = printed.replace(str(tmp_path / "leadline.db"), "/home/you/leadline/leadline.db")
    assert printed == started


def test_the_readme_names_every_package_the_test_command_installs():
    """A reader on a machine without them learns from the README what ``bash scripts/test.sh`` will
    install as root (or ask for), before running it."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    installed = re.findall(r"\|\| missing\+=\(([^)]+)\)", script)
    assert installed == ["dovecot-imapd", "systemd"]
    readme = (ROOT / "README.md").read_text()
    setup = section(readme, "Set-up")
    said = setup[: setup.index("```sh\nbash scripts/test.sh")].strip().rsplit("\n\n", 1)[-1]
    assert all(f"`{package}`" in said for package in installed), said
