"""The CHECKs that keep a column to its words refuse what they refused, spelled so that SQLite
does not build a table of the words for every row written (m031)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage.db import connect, open_database
from storage.schema import migrate, migrations


def test_an_upgraded_database_keeps_its_rows_and_refuses_what_it_refused(tmp_path: Path) -> None:
    path = tmp_path / "leadline.db"
    db = connect(path)
    migrations.apply(db, stop_before="m031_checks_without_lists")
    contact = db.execute(
        "INSERT INTO contacts (name, created_at, updated_at) VALUES ('Ivan', 'x', 'x')"
    ).lastrowid
    db.execute(
        "INSERT INTO identifiers (contact_id, kind, value, raw, valid, created_at)"
        " VALUES (?, 'phone', '+79161234567', '8 916 123-45-67', 1, 'x')",
        [contact],
    )
    db.execute(
        "INSERT INTO touches (source, external_id, channel, contact_id, occurred_at, received_at, updated_at)"
        " VALUES ('site', 'form:1', 'form', ?, 'x', 'x', 'x')",
        [contact],
    )
    db.execute(
        "INSERT INTO journal (source, method, received_at, status) VALUES ('site', 'POST', 'x', 'processed')"
    )
    db.close()

    db = open_database(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert db.execute("SELECT kind, value FROM identifiers").fetchall() == [("phone", "+79161234567")]
    assert db.execute("SELECT channel, arrival FROM touches").fetchall() == [("form", None)]
    for refused in (
        "UPDATE identifiers SET kind = 'fax'",
        "UPDATE touches SET channel = 'fax'",
        "UPDATE touches SET arrival = 'later'",
        "UPDATE journal SET status = 'lost'",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            db.execute(refused)
    db.execute("UPDATE identifiers SET kind = 'whatsapp_username'")
    db.execute("UPDATE touches SET channel = 'chat', arrival = 'held'")
    db.execute("UPDATE touches SET arrival = NULL")
    db.execute("UPDATE journal SET status = 'failed'")
    assert db.execute("SELECT kind FROM identifiers").fetchall() == [("whatsapp_username",)]


def test_no_check_lists_three_words(tmp_path: Path) -> None:
    db = open_database(tmp_path / "leadline.db")
    listed = {
        name: found
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        if (found := re.findall(r"\w+ IN \('\w+'(?:, '\w+'){2,}\)", sql or ""))
    }
    assert listed == {}


def test_a_new_database_gets_in_one_commit_the_schema_the_migrations_give_one_by_one(tmp_path: Path) -> None:
    stepwise = connect(tmp_path / "stepwise.db")
    migrations.apply(stepwise)  # each migration committed as it is applied, as an upgrade does
    new = connect(tmp_path / "new.db")
    statements: list[str] = []
    new.conn.set_trace_callback(statements.append)
    migrate(new)
    new.conn.set_trace_callback(None)
    assert [s for s in statements if s.strip().upper() == "COMMIT"] == ["COMMIT"]

    def schema(db: Database) -> list[tuple[object, ...]]:
        return db.execute(
            "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY rowid"
        ).fetchall()

    assert schema(new) == schema(stepwise)
    assert len(schema(new)) > 60
    for pragma in ("user_version", "schema_version"):
        assert new.execute(f"PRAGMA {pragma}").fetchone() == stepwise.execute(f"PRAGMA {pragma}").fetchone()
    for query in (
        "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id",
        "SELECT name, seq FROM sqlite_sequence ORDER BY name",
    ):
        assert new.execute(query).fetchall() == stepwise.execute(query).fetchall()
    assert new.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # Once it has the schema, opening it again applies nothing.
    statements.clear()
    new.conn.set_trace_callback(statements.append)
    migrate(new)
    assert not [s for s in statements if s.strip().upper().startswith(("BEGIN", "CREATE", "ALTER"))]
