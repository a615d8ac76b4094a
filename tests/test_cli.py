"""The command line as a user meets it, and a README that documents every command."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import click
import pytest

from leadline.cli import main
from leadline.cli_base import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_RUNTIME, EXIT_USAGE
from leadline.load import parse_config
from tests.capture.test_core_http import write_config
from tests.cli import ROOT, Result, run_cli, run_cli_sync


def test_check_config_accepts_the_example_config_and_warns_of_its_example_token():
    result = run_cli_sync("check-config", "--config", str(ROOT / "config.example.toml"))
    assert result.code == 0, result.output
    assert "Config is valid." in result.output
    assert "site-form (generic_form) at http://127.0.0.1:8080/hooks/site-form" in result.output
    assert "Warning: sources[0].token: still the example's value (change-me-…)" in result.output
    assert "change-me-site-form-token" not in result.output


def test_check_config_without_a_public_url_names_the_port_of_the_config(tmp_path: Path):
    """With no ``[http] public_url`` the URLs are where Leadline listens, as ``serve`` says: the
    summary named the default's port 8080 for a config on another."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[http]\nport = 18439\n\n[[sources]]\nname = "site-form"\nprovider = "generic_form"\ntoken = "t"\n'
    )
    result = run_cli_sync("check-config", "--urls", "--config", str(config))
    assert result.code == 0, result.output
    assert "public URL http://127.0.0.1:18439," in result.output
    assert "site-form (generic_form) at http://127.0.0.1:18439/hooks/site-form; needs token" in result.output
    assert "  site-form (generic_form): http://127.0.0.1:18439/hooks/site-form?token=t" in result.output
    assert "8080" not in result.output


def test_check_config_names_each_clash_and_bad_tracking_number_on_its_own_line(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[working_time]\nhours = "00:00-24:00"\n\n'
        '[[staff]]\nname = "Anna"\ntelegram_id = 111\nextensions = ["101"]\n\n'
        '[[staff]]\nname = "Boris"\ntelegram_id = 111\nextensions = ["102"]\n\n'
        '[[staff]]\nname = "anna"\ntelegram_id = 333\nextensions = ["103", "102"]\n\n'
        '[[campaigns]]\nname = "brand"\ntracking_numbers = ["+74950000055", "8 495 000"]\n\n'
        '[[campaigns]]\nname = "radio"\ntracking_numbers = ["8 (495) 000-00-55"]\n'
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  staff[1].telegram_id: 111 is also staff[0]'s (Anna)",
        "  staff[2].name: 'anna' is also staff[0]'s name",
        "  staff[2].extensions[1]: extension '102' is also staff[1]'s (Boris)",
        "  campaigns[0].tracking_numbers[1]: '8 495 000' is not a valid phone number (region RU)",
        "  campaigns[1].tracking_numbers[0]: +74950000055 is also campaigns[0]'s (brand)",
    ]


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_utm_value_address_or_ad_of_two_campaigns_is_refused_as_a_tracking_number_is(
    tmp_path: Path, command: str
):
    """Such a config passed, and every form with utm_campaign=brand_msk and every mail to
    sales@example.com counted for the last campaign that named it, with no word."""
    result = run_on_config(
        tmp_path,
        command,
        '[[campaigns]]\nname = "brand_msk"\nutm_campaign = ["brand_msk"]\nemails = ["sales@example.com"]\n'
        'vk_forms = [3]\navito_items = ["6000000001"]\n\n'
        '[[campaigns]]\nname = "vk_ads"\nutm_source = ["vk"]\n\n'
        '[[campaigns]]\nname = "copy"\nutm_campaign = ["other", " Brand_MSK "]\nutm_source = ["VK"]\n'
        'emails = ["Sales@Example.com"]\nvk_forms = ["3"]\navito_items = [6000000001]\n',
    )
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  campaigns[2].utm_campaign[1]: 'brand_msk' is also campaigns[0]'s (brand_msk)",
        "  campaigns[2].utm_source[0]: 'vk' is also campaigns[1]'s (vk_ads)",
        "  campaigns[2].vk_forms[0]: '3' is also campaigns[0]'s (brand_msk)",
        "  campaigns[2].avito_items[0]: '6000000001' is also campaigns[0]'s (brand_msk)",
        "  campaigns[2].emails[0]: 'sales@example.com' is also campaigns[0]'s (brand_msk)",
    ]


def test_check_config_validates_block_rules_and_register_sources(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[block]]\nprefix = "7800"\n\n'
        '[[block]]\nprefix = "+7800"\nnumber = "+79161234567"\n\n'
        '[[block]]\nemail = "not-an-address"\n\n'
        "[[block]]\nshort_call_seconds = 0\n\n"
        '[[sources]]\nname = "quiz"\nprovider = "generic_form"\ntoken = "t"\nregister = "lead"\n\n'
        '[[sources]]\nname = "jobs"\nprovider = "generic_form"\ntoken = "t"\nregister = "not_a_lead"\n'
        'reason = "no_budget"\n'
    )
    result = run_cli_sync("check-config", "--config", str(bad))
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        '  sources[0]: register = "lead" needs temperature (hot, warm or cold) and no reason',
        "  sources[1].reason: Input should be 'partner', 'job_seeker', 'spam', 'wrong_number',"
        " 'existing_client' or 'other'",
        "  block[0].prefix: '7800' is not a number prefix: write it in international form, e.g. \"+7800\"",
        "  block[1]: give exactly one of prefix, number, email or short_call_seconds (this entry has prefix, number)",
        "  block[2].email: 'not-an-address' is not an email address",
        "  block[3].short_call_seconds: Input should be greater than 0",
    ]
    number = tmp_path / "number.toml"
    number.write_text('[[block]]\nnumber = "8 916 12"\n')
    result = run_cli_sync("check-config", "--config", str(number))
    assert (
        result.code == 3
        and "block[0].number: '8 916 12' is not a valid phone number (region RU)" in result.output
    )
    wide = tmp_path / "wide.toml"
    wide.write_text(
        '[[block]]\nprefix = "+7"\n\n[[block]]\nshort_call_seconds = 3\n\n[[block]]\nshort_call_seconds = 5\n\n'
        '[[sources]]\nname = "quiz"\nprovider = "generic_form"\ntoken = "t"\nregister = "lead"\n'
        'temperature = "hot"\n'
    )
    result = run_cli_sync("check-config", "--config", str(wide))
    assert result.code == 0, result.output
    assert "Warning: block[0].prefix: +7 is a country code or little more" in result.output
    assert (
        "Warning: block[2].short_call_seconds: block[1] gives one too; the longest applies" in result.output
    )


def test_round_the_clock_hours_are_accepted(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('[working_time]\ndays = ["mon", "sun"]\nhours = "00:00-24:00"\n')
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 0, result.output
    assert "working:    mon, sun 00:00-24:00" in result.output


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_an_empty_working_week_is_named_under_its_own_key(tmp_path: Path, command: str):
    """It was refused, but as `working_time.holidays: working_time.days is empty: ...`."""
    result = run_on_config(tmp_path, command, "[working_time]\ndays = []\n")
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  working_time.days: empty: there would be no working time at all; list the working days, e.g."
        ' ["mon", "tue", "wed", "thu", "fri"]'
    ]


def test_check_config_names_the_broken_key(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[leadline]\ntimezone = "Mars/Olympus"\n\n'
        '[[sources]]\nname = "a"\nprovider = "generic_form"\ntoken = "t"\n\n'
        '[[sources]]\nname = "b"\nprovider = "mango"\nvpbx_api_key = "k"\n\n'
        '[[sources]]\nname = "c"\nprovider = "generic_form"\ntoken = "env:LEADLINE_TEST_UNSET_VAR"\ncolour = "red"\n'
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 3
    assert "leadline.timezone: unknown time zone 'Mars/Olympus'" in result.output
    assert "sources[1]: provider mango needs vpbx_api_salt" in result.output
    assert "sources[2].token: environment variable LEADLINE_TEST_UNSET_VAR is not set" in result.output
    assert "sources[2].colour: unknown key" in result.output


@pytest.mark.parametrize(("code", "why"), [("XX", "Country XX not available"), ("DE-XX", "subdivision XX")])
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_an_unknown_holidays_country_is_a_config_problem_with_its_key(
    tmp_path: Path, command: str, code: str, why: str
):
    """Only the holidays package knows its countries: check-config passed such a code, and serve
    and report then stopped with a traceback and exit 1, which the unit restarts in a loop."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n\n[working_time]\nholidays = "{code}"\n'
    )
    result = run_cli_sync(command, "--config", str(config))
    assert result.code == 3, result.output
    assert f"  working_time.holidays: unknown holidays country '{code}'" in result.output
    assert why in result.output
    assert "Traceback" not in result.output


def run_on_config(tmp_path: Path, command: str, tables: str, http: str = "") -> Result:
    """``command`` on a config of ``tables`` (and ``http``'s lines in ``[http]``), its database in
    ``tmp_path`` and on a free port, so a ``serve`` that wrongly starts collides with nothing (it
    runs until the CLI's timeout)."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n\n[http]\nport = 0\n{http}\n{tables}'
    )
    return run_cli_sync(command, "--config", str(config))


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_token_on_a_mango_source_is_refused_since_mango_appends_its_paths_after_the_url(
    tmp_path: Path, command: str
):
    """The URL printed was ``…/hooks/mango?token=T``; Mango posts to it with ``/events/summary``
    appended, so the token read ``T/events/summary`` and every call was a 401, never replayed."""
    result = run_on_config(
        tmp_path,
        command,
        '[[sources]]\nname = "mango"\nprovider = "mango"\nvpbx_api_key = "k"\nvpbx_api_salt = "s"\n'
        'token = "tok-mango-abcdefghijklmnopqrstuvwxyz"\n',
    )
    assert result.code == 3, result.output
    assert (
        "sources[0].token: cannot apply: mango appends its own paths (/events/call, /events/summary,"
        " /events/recording) after the URL it is given, so a ?token= in that URL never arrives as"
        " written; its signature already covers every event: remove the token (allow_ips still applies)"
    ) in result.output
    assert "tok-mango-abcdefghijklmnopqrstuvwxyz" not in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("serve", "--port", "80000"), "Invalid value for '--port': 80000 is not in the range 0<=x<=65535."),
        (("serve", "--port", "-1"), "Invalid value for '--port': -1 is not in the range 0<=x<=65535."),
        (
            ("plan", "--clients", "2", "--days", "0"),
            "Invalid value for '--days': 0 is not in the range x>=1.",
        ),
    ],
)
def test_a_number_out_of_range_on_the_command_line_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...], said: str
):
    """``serve --port 80000`` listened on port 14464 (80000 mod 65536), while the same port in the
    config is refused; ``--port -1`` was exit 4 and ``plan --days 0`` a traceback."""
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{tmp_path / "leadline.db"}"\n\n[http]\nport = 0\n')
    result = run_cli_sync(*args, "--config", str(config))
    assert result.code == EXIT_USAGE == 2, result.output
    assert result.output.splitlines()[-1] == f"Error: {said}"
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_two_campaigns_with_one_name_are_refused(tmp_path: Path, command: str):
    """A block copied for a new city with its name unchanged passed as valid, and serve merged the
    two: their costs added up and the second's tracking number counted for the first."""
    result = run_on_config(
        tmp_path,
        command,
        '[[campaigns]]\nname = "brand_msk"\ntracking_numbers = ["+74950000055"]\n\n'
        '[[campaigns]]\nname = "brand_msk"\nkind = "company"\ntracking_numbers = ["+78120000077"]\n',
    )
    assert result.code == 3, result.output
    assert "  campaigns: duplicate name brand_msk" in result.output.splitlines()


@pytest.mark.parametrize("key", ["utm_campaign", "utm_source", "emails", "vk_forms", "avito_items"])
def test_an_empty_attribution_entry_is_refused(tmp_path: Path, key: str):
    """A form or a letter without a UTM tag, an address or an id is looked up as "": a campaign
    listing "" took every one of them, with no word from check-config."""
    result = run_on_config(
        tmp_path, "check-config", f'[[campaigns]]\nname = "brand_msk"\n{key} = ["x", " "]\n'
    )
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        f"  campaigns[0].{key}: an empty entry would give this campaign every touch that has none: remove it"
    ]


@pytest.mark.parametrize(
    ("table", "written"),
    [("digest", "9.30"), ("digest", "09:00+03:00"), ("digest", "24:00"), ("retention", "3.30")],
)
def test_a_daily_time_not_written_as_hh_mm_is_refused(tmp_path: Path, table: str, written: str):
    """``9.30`` passed and meant 09:00 (the digest came half an hour early, the retention pass at
    03:00); ``09:00+03:00`` passed and serve died at start with a TypeError and exit 1."""
    result = run_on_config(tmp_path, "check-config", f'[{table}]\ntime = "{written}"\n')
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        f"  {table}.time: write the time as HH:MM on the office clock ([leadline] timezone),"
        f" e.g. 09:30, not {written!r}"
    ]


def test_serve_refuses_a_digest_time_with_a_utc_offset(tmp_path: Path):
    result = run_on_config(tmp_path, "serve", '[digest]\ntime = "09:00+03:00"\n')
    assert result.code == 3, result.output
    assert "  digest.time: write the time as HH:MM" in result.output
    assert "Traceback" not in result.output


def test_a_chat_or_user_written_as_a_name_is_refused_with_how_to_find_its_numeric_id(tmp_path: Path):
    """``team_chat = "@mysales"`` said only "Input should be a valid integer, unable to parse string
    as an integer": Telegram's ids are numbers, and the message did not say which or where to get one."""
    result = run_on_config(
        tmp_path,
        "check-config",
        '[telegram]\nteam_chat = "@mysales"\n\n'
        '[[staff]]\nname = "Boris"\ntelegram_id = "@boris"\n\n'
        '[[staff]]\nname = "Anna"\ntelegram_id = "anna k"\n',
    )
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  telegram.team_chat: Telegram needs the group's numeric chat id, not '@mysales': a group's is"
        " negative, e.g. -1001234567890 (docs/bot.md says how to find it); 0: no team chat",
        "  staff[0].telegram_id: Telegram needs the person's numeric user id, not '@boris', e.g. 111111111"
        " (a bot such as @userinfobot shows it; docs/bot.md)",
        "  staff[1].telegram_id: Telegram needs the person's numeric user id, not 'anna k', e.g. 111111111"
        " (a bot such as @userinfobot shows it; docs/bot.md)",
    ]
    # An id written as a string of digits is still that id.
    config = parse_config(
        {"telegram": {"team_chat": "-1001234567890"}, "staff": [{"name": "A", "telegram_id": " 42 "}]}
    )
    assert (config.telegram.team_chat, config.staff[0].telegram_id) == (-1001234567890, 42)


def test_a_daily_time_of_one_digit_hours_is_the_time_written():
    config = parse_config({"digest": {"time": "9:30"}, "retention": {"time": " 3:05 "}})
    assert (config.digest.time, config.retention.time) == ("09:30", "03:05")


@pytest.mark.parametrize(
    ("period", "why"),
    [
        ("2026-13", "month must be in 1..12"),
        ("2026-02-30", "day is out of range for month"),
        ("2026-12..2026-11", "the period '2026-12..2026-11' ends before it starts"),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_cost_period_of_no_real_days_is_a_config_problem_with_its_key(
    tmp_path: Path, command: str, period: str, why: str
):
    """check-config checked only the period's shape and passed these; serve then died in
    sync_costs with a ValueError traceback and exit 1, which the unit restarts in a loop."""
    result = run_on_config(
        tmp_path,
        command,
        '[[campaigns]]\nname = "brand_msk"\n\n'
        '[[campaigns.costs]]\nperiod = "2026-11"\namount = 45000\n\n'
        f'[[campaigns.costs]]\nperiod = "{period}"\namount = 10000\n',
    )
    assert result.code == 3, result.output
    assert f"  campaigns[0].costs[1].period: {why}" in result.output.splitlines()
    assert "Traceback" not in result.output


@pytest.mark.parametrize("token", ["123456789", "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw ", "bot:AAH"])
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_telegram_token_aiogram_would_refuse_is_a_config_problem(tmp_path: Path, command: str, token: str):
    """The bot's id alone or a token with a stray space passed check-config, then serve died at
    start with aiogram's TokenValidationError and exit 1."""
    result = run_on_config(tmp_path, command, f'[telegram]\ntoken = "{token}"\n')
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  telegram.token: not a bot token: write it as @BotFather gives it, the bot's id, a colon and"
        " the secret (123456789:AAE…), with no spaces; empty switches the bot off"
    ]
    assert "AAHdqT" not in result.output


@pytest.mark.parametrize("url", ["bot.example.com/telegram", "/telegram/webhook"])
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_telegram_webhook_url_without_its_scheme_is_a_config_problem(
    tmp_path: Path, command: str, url: str
):
    """Such an address passed check-config, then serve died at start with "ValueError: path should be
    started with / or be empty" and exit 1."""
    result = run_on_config(
        tmp_path,
        command,
        f'[telegram]\ntoken = "123456789:AAE-test"\napi_url = "http://127.0.0.1:9"\nwebhook_url = "{url}"\n',
    )
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  telegram.webhook_url: write the address Telegram posts to as https://host/path, e.g."
        " https://hooks.example.com/telegram/webhook; empty: long polling"
    ]


@pytest.mark.parametrize("secret", ["Leadline webhook secret #1!", "секрет", "x" * 257])
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_telegram_webhook_secret_the_bot_api_refuses_is_a_config_problem(
    tmp_path: Path, command: str, secret: str
):
    """Such a secret passed check-config; serve then started, Telegram refused its setWebhook on every
    retry ("secret token contains unallowed characters"), and the bot never received an update."""
    result = run_on_config(
        tmp_path,
        command,
        '[telegram]\ntoken = "123456789:AAE-test"\napi_url = "http://127.0.0.1:9"\n'
        f'webhook_url = "https://bot.example.com/telegram/webhook"\nwebhook_secret = "{secret}"\n',
    )
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        "  telegram.webhook_secret: Telegram accepts only 1 to 256 of the letters A-Z and a-z, the"
        " digits 0-9, _ and - in a webhook secret; empty: derived from the token"
    ]
    assert secret not in result.output


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("", "empty: name the database file, e.g. leadline.db"),
        ("data/", "'data/' names a folder: name the file in it, e.g. data/leadline.db"),
        ("{folder}", "'{folder}' is a folder: name the file in it, e.g. {folder}/leadline.db"),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_database_that_is_no_file_is_a_config_problem(tmp_path: Path, command: str, written: str, why: str):
    """An empty database (the config's folder) or a folder passed check-config, which printed the
    folder as `database:`; serve then died with "unable to open database file" and exit 1, and left
    a `<folder>.serve.lock` beside it."""
    folder = tmp_path / "data"
    folder.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[leadline]\ndatabase = "{written.format(folder=folder)}"\n\n[http]\nport = 0\n')
    result = run_cli_sync(command, "--config", str(config))
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [f"  leadline.database: {why.format(folder=folder)}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "data"]
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("url", ["hooks.example.com", "//hooks.example.com", "ftp://hooks.example.com"])
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_public_url_without_http_or_https_is_a_config_problem(tmp_path: Path, command: str, url: str):
    """`hooks.example.com` passed check-config, which printed `hooks.example.com/hooks/...` as the
    address to paste, and every correctly signed Twilio call was then refused with 401."""
    result = run_on_config(tmp_path, command, "", http=f'public_url = "{url}"\n')
    assert result.code == 3, result.output
    assert result.output.splitlines()[1:] == [
        f"  http.public_url: write the address providers see as http(s)://host, e.g."
        f" https://hooks.example.com, not {url!r}"
    ]


def test_an_empty_public_url_is_still_accepted(tmp_path: Path):
    result = run_on_config(tmp_path, "check-config", "", http='public_url = ""\n')
    assert result.code == 0, result.output
    assert parse_config({"http": {"public_url": ""}}).http.public_url == ""
    assert parse_config({"http": {"public_url": " https://hooks.example.com/ "}}).http.public_url == (
        "https://hooks.example.com"
    )


def test_check_config_reads_secrets_from_the_environment(tmp_path: Path):
    import os

    config = tmp_path / "config.toml"
    config.write_text(
        '[[sources]]\nname = "a"\nprovider = "generic_form"\ntoken = "env:LEADLINE_TEST_TOKEN"\n'
    )
    result = run_cli_sync(
        "check-config", "--config", str(config), env={**os.environ, "LEADLINE_TEST_TOKEN": "s3"}
    )
    assert result.code == 0, result.output
    assert "s3" not in result.output


def test_check_config_warns_of_a_webhook_secret_that_cannot_sign(tmp_path: Path):
    """Such a secret passed check-config unnamed, then failed every delivery of every webhook in
    serve. A warning, not an error: a CRM's key must never keep serve, and capture, from starting."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[[webhooks]]\nurl = "https://crm.example.com/leadline"\nsecret = "mysecret1"\n\n'
        '[[webhooks]]\nurl = "https://crm.example.com/other"\n'
        'secret = "whsec_dGVzdC1vdXRnb2luZy13ZWJob29rcy1zZWNyZXQtMzJieXRlcw=="\n'
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Warning: webhooks")] == [
        "Warning: webhooks[0].secret: not a Standard Webhooks secret: write whsec_ followed by base64,"
        " as the receiver gives it; until then every delivery to it fails"
    ]
    assert "mysecret1" not in result.output


def test_check_config_takes_token_allow_ips_and_trusted_proxies_and_names_a_bad_one(tmp_path: Path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[http]\ntrusted_proxies = ["127.0.0.1", "fd00::/8"]\n\n'
        '[[sources]]\nname = "zadarma"\nprovider = "zadarma"\napi_secret = "s"\ntoken = "t"\n'
        'allow_ips = ["185.45.152.42", "2001:db8::/32"]\n'
    )
    result = run_cli_sync("check-config", "--config", str(good))
    assert result.code == 0, result.output
    assert "X-Forwarded-For believed from 127.0.0.1/32, fd00::/8" in result.output
    assert "hooks/zadarma; needs token and allow_ips 185.45.152.42/32, 2001:db8::/32" in result.output

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[http]\ntrusted_proxies = ["10.0.0.1/8"]\n\n'
        '[[sources]]\nname = "mailgun"\nprovider = "mailgun"\nwebhook_signing_key = "k"\ntoken = ""\n'
        'allow_ips = ["185.45.152.42", "185.45.152.0/33"]\n\n'
        '[[sources]]\nname = "inbox"\nprovider = "imap"\nusername = "u"\npassword = "p"\ntoken = "t"\n'
    )
    result = run_cli_sync("check-config", "--config", str(bad))
    assert result.code == 3
    assert (
        "http.trusted_proxies[0]: '10.0.0.1/8' has bits set after the prefix: write the network as 10.0.0.0/8"
        in result.output
    )
    assert "sources[0].token: empty" in result.output
    assert (
        "sources[0].allow_ips[1]: '185.45.152.0/33' is not an IPv4 or IPv6 address or network"
        in result.output
    )
    assert "sources[1].token: cannot apply: Leadline itself connects to the imap server" in result.output


async def test_every_command_has_help_and_h_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"leadline ([a-z][a-z-]+)", readme))
    commands: list[tuple[str, ...]] = [()]
    ctx = click.Context(main)
    names = main.list_commands(ctx)
    assert {"serve", "report", "journal", "forget"} <= set(names)
    for name in names:
        command = main.get_command(ctx, name)
        assert command is not None, name
        assert name in documented, f"README does not document `leadline {name}`"
        commands.append((name,))
        commands += [(name, sub) for sub in getattr(command, "commands", {})]
    for words, long, short in zip(
        commands,
        await asyncio.gather(*(run_cli(*words, "--help") for words in commands)),
        await asyncio.gather(*(run_cli(*words, "-h") for words in commands)),
        strict=True,
    ):
        assert long.code == 0 and ("--config" in long.output or not words), words
        assert (short.code, short.output) == (long.code, long.output), words


def test_exit_codes_are_distinct_documented_and_known_to_systemd(tmp_path: Path):
    usage = run_cli_sync("report", "--no-such-option")
    config = run_cli_sync("check-config", "--config", str(tmp_path / "missing.toml"))
    assert (usage.code, config.code) == (EXIT_USAGE, EXIT_CONFIG) == (2, 3)
    assert f"{tmp_path / 'missing.toml'}: cannot read" in config.output
    assert len({EXIT_NOT_FOUND, EXIT_USAGE, EXIT_CONFIG, EXIT_RUNTIME}) == 4
    readme = (ROOT / "README.md").read_text()
    for code in (EXIT_NOT_FOUND, EXIT_USAGE, EXIT_CONFIG, EXIT_RUNTIME):
        assert re.search(rf"^\| {code} \| ", readme, re.M), f"README does not document exit code {code}"
    # Restarting cannot fix a command line or a config: systemd must not try every two seconds.
    unit = (ROOT / "deploy" / "leadline.service").read_text()
    assert f"RestartPreventExitStatus={EXIT_USAGE} {EXIT_CONFIG}" in unit


def test_check_config_warns_of_a_telegram_business_source_without_a_bot(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[[sources]]\nname = "tg"\nprovider = "telegram_business"\n\n'
        '[[sources]]\nname = "tg2"\nprovider = "telegram_business"\n'
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 0, result.output
    assert "tg (telegram_business) at the Telegram bot" in result.output
    assert "Warning: sources[0]: telegram_business updates reach Leadline through its bot" in result.output
    assert "Warning: sources[1]: only the first telegram_business source (sources[0])" in result.output


def test_check_config_warns_of_a_binotel_source_not_read_as_ukrainian(tmp_path: Path):
    """Without region = "UA" every Binotel caller was stored as an invalid 0440000012, never matched,
    and the call lost its campaign, with no word from check-config (docs/telephony.md says UA)."""
    binotel = '[[sources]]\nname = "binotel{n}"\nprovider = "binotel"\ntoken = "t{n}"\n{region}\n'
    result = run_on_config(
        tmp_path,
        "check-config",
        binotel.format(n=0, region="")
        + binotel.format(n=1, region='region = "KZ"')
        + binotel.format(n=2, region='region = "ua"'),
    )
    assert result.code == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Warning: sources")] == [
        "Warning: sources[0].region: Binotel sends Ukrainian numbers in national format (0440000012);"
        " read in region RU they are not the callers' numbers, so calls lose their contact"
        ' and campaign: set region = "UA"',
        "Warning: sources[1].region: Binotel sends Ukrainian numbers in national format (0440000012);"
        " read in region KZ they are not the callers' numbers, so calls lose their contact"
        ' and campaign: set region = "UA"',
    ]


def test_check_config_takes_assignment_and_shifts_and_names_an_unknown_assignee(tmp_path: Path):
    config = tmp_path / "config.toml"
    staff = '[[staff]]\nname = "Anna"\ntelegram_id = 111\nshift = { days = ["mon", "tue"], hours = "09:00-15:00" }\n\n'
    config.write_text('[notify]\noutside_hours = "send"\n\n[assign]\nstaff = ["Anna"]\n\n' + staff)
    assert run_cli_sync("check-config", "--config", str(config)).code == 0
    config.write_text(
        '[assign]\nmode = "by_lottery"\nstaff = ["Anna", "Nobody"]\n\n' + staff.replace("15:00", "25:00")
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == 3, result.output
    assert "assign.mode: " in result.output
    assert "staff[0].shift.hours: " in result.output
    config.write_text('[assign]\nstaff = ["Anna", "Nobody"]\n\n' + staff)
    result = run_cli_sync("check-config", "--config", str(config))
    assert "assign.staff[1]: no staff member named 'Nobody'" in result.output


async def test_contacts_exits_1_when_none_matches_in_text_and_in_json(start_server, tmp_path: Path):
    """README: `leadline contacts QUERY [--json]` exits 1 when none matches; a script's `|| none`
    must see it in either form."""
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", data={"name": "Ivan", "phone": "8 (916) 123-45-67"}
    )
    assert resp.status == 200
    config = str(write_config(tmp_path, srv.config))
    found = await run_cli("contacts", "--config", config, "--json", "9161234567")
    assert found.code == 0, found.output
    assert [card["name"] for card in json.loads(found.output)] == ["Ivan"]
    for form in ((), ("--json",)):
        none = await run_cli("contacts", "--config", config, *form, "nobody-here")
        assert none.code == EXIT_NOT_FOUND, none.output
    assert none.output.strip() == "[]"


def test_a_business_account_written_as_a_name_is_refused_with_how_to_find_its_numeric_id(tmp_path: Path):
    """``accounts = ["@boss"]`` said only pydantic's "unable to parse string as an integer"."""
    result = run_on_config(
        tmp_path,
        "check-config",
        '[telegram]\ntoken = "123:abc"\n\n[[sources]]\nname = "tg"\nprovider = "telegram_business"\n'
        'accounts = ["@boss"]\n',
    )
    assert result.code == EXIT_CONFIG, result.output
    assert result.output.splitlines()[1:] == [
        "  sources[0].accounts: Telegram needs the business account's numeric user id, not '@boss',"
        " e.g. 111111111 (a bot such as @userinfobot shows it; docs/chats.md)",
    ]
    config = parse_config(
        {"sources": [{"name": "tg", "provider": "telegram_business", "accounts": [" 42 ", 43]}]}
    )
    assert config.sources[0].accounts == [42, 43]


def test_accounts_apply_to_a_telegram_business_source_only(tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[telegram]\ntoken = "123:abc"\n\n'
        '[[sources]]\nname = "tg"\nprovider = "telegram_business"\naccounts = [100000001]\n\n'
        '[[sources]]\nname = "form"\nprovider = "generic_form"\ntoken = "form-token"\naccounts = [100000001]\n'
    )
    result = run_cli_sync("check-config", "--config", str(config))
    assert result.code == EXIT_CONFIG, result.output
    assert (
        "sources[1].accounts: cannot apply: only a telegram_business source takes business connections"
        in result.output
    )
    assert "sources[0]" not in result.output
