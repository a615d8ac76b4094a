"""What a person cloning the repository meets: the license, and a clean ``git status`` after trying it."""

from __future__ import annotations

import asyncio
import importlib.metadata
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp

from tests.cli import ROOT, free_port, start_serve
from tests.test_serve_start import CONFIG as SERVE_CONFIG


def test_the_license_is_mit_in_the_file_the_project_and_the_installed_metadata():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (project["license"], project["license-files"]) == ("MIT", ["LICENSE"])
    assert importlib.metadata.metadata("leadline")["License-Expression"] == "MIT"


def test_each_dependency_is_listed_once_in_its_list():
    """Two lines for one package drift apart: a bound raised on one is silently undone by the other."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lists = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    for name, entries in lists.items():
        packages = [canonicalize_name(Requirement(entry).name) for entry in entries]
        assert sorted({p for p in packages if packages.count(p) > 1}) == [], name


def leadline(cwd: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "leadline", *args], cwd=cwd, check=True, capture_output=True, timeout=300
    )


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


async def test_the_demo_serve_export_and_a_backup_leave_nothing_for_git_to_show(tmp_path: Path):
    git(tmp_path, "init", "-q")
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    git(tmp_path, "add", ".gitignore")
    await asyncio.to_thread(leadline, tmp_path, "demo")
    await asyncio.to_thread(leadline, tmp_path, "export", "--config", "leadline-demo.toml")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(SERVE_CONFIG.format(db="leadline.db", port=port))
    proc = await start_serve(config, port)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/hooks/site-form?token=s3cret%2Ftoken%261"
            async with session.post(url, data={"phone": "+7 916 123-45-67"}) as resp:
                assert resp.status == 200
        await asyncio.to_thread(leadline, tmp_path, "backup", "copy.db", "--config", "config.toml")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=90)

    assert names(tmp_path) >= {
        "leadline-demo.db",
        "leadline-demo.toml",
        "leadline-export",
        "leadline.db",
        "leadline.db.lock",
        "leadline.db.serve.lock",
        "copy.db",
    }
    assert git(tmp_path, "ls-files", "--others", "--exclude-standard") == ""
