"""The registry of providers is the one list: the README, the samples, the config and the app agree with it."""

from __future__ import annotations

import re
from pathlib import Path

from capture.providers import PROVIDERS
from tests.cli import ROOT, run_cli_sync
from tests.samples import manifest

#: Providers without a sample in the manifest: an IMAP mailbox is polled, and its mail is what the
#: smtp samples already are.
WITHOUT_SAMPLES = {"imap"}
#: Providers the manifest has samples of and Leadline does not take yet.
NOT_BUILT: set[str] = set()


def readme_table() -> list[str]:
    """The providers of the README's "Every provider at a glance" table, in its order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Every provider at a glance", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)


def test_the_readme_table_lists_every_provider_in_the_registry_and_no_other() -> None:
    assert readme_table() == list(PROVIDERS)


def test_the_samples_manifest_names_every_provider_in_the_registry_and_no_other() -> None:
    sampled = {s.provider for s in manifest()}
    assert set(PROVIDERS) - WITHOUT_SAMPLES <= sampled, "a provider without samples"
    assert sampled - NOT_BUILT <= set(PROVIDERS), "samples of a provider the registry lacks"


def test_every_provider_loads_and_a_source_not_over_http_has_a_background_runner() -> None:
    for name, registered in PROVIDERS.items():
        provider = registered.load()
        assert callable(provider.verify) and callable(provider.parse), name
        assert bool(provider.methods) == registered.over_http, name
        if not registered.over_http and not registered.via_bot:
            assert callable(registered.background()), name


def test_check_config_names_the_providers_of_the_registry_for_an_unknown_one(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[sources]]\nname = "chat"\nprovider = "yandex_forms"\ntoken = "t"\n\n'
        '[[sources]]\nname = "mail"\nprovider = "smtp"\ntoken = "t"\n'
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 3  # EXIT_CONFIG
    names = [f"'{name}'" for name in PROVIDERS]
    assert f"sources[0].provider: Input should be {', '.join(names[:-1])} or {names[-1]}\n" in result.output
    assert "sources[1].token: cannot apply: an smtp source receives mail over SMTP, not HTTP" in result.output
