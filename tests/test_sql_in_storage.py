"""SQL lives under storage/ alone: capture/, bot/ and leadline/ reach the base through its functions.

DESIGN.md ("Scale") promises that the schema can move to PostgreSQL without touching ``capture/``
or ``bot/``; one statement written elsewhere breaks that promise silently, so the suite looks for
them: SQL keywords in string literals (docstrings aside) and calls that hand a connection a
statement (``db.execute(...)``, ``conn.executemany(...)``, ``db.query(...)``, ``db["table"]``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("capture", "bot", "leadline")
#: Modules whose SQL has yet to move into storage/: none are left, so the list only stays empty.
NOT_YET_MOVED: frozenset[str] = frozenset()

SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE INTO|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK"
    r"|SAVEPOINT|WHERE|FROM \w+|JOIN)\b"
)
STATEMENT_CALLS = frozenset({"execute", "executemany", "executescript", "query", "table"})
CONNECTIONS = re.compile(r"(^|_)(db|conn|connection|cursor)$")


def _receiver(node: ast.expr) -> str:
    """The last name of what a method is called on: ``db`` in ``db.execute``, ``conn`` in ``db.conn.execute``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _receiver(node.func)
    return ""


def _docstrings(tree: ast.Module) -> set[int]:
    owners = [
        tree,
        *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)),
    ]
    return {
        id(owner.body[0].value)
        for owner in owners
        if owner.body
        and isinstance(owner.body[0], ast.Expr)
        and isinstance(owner.body[0].value, ast.Constant)
        and isinstance(owner.body[0].value.value, str)
    }


def sql_in(source: str) -> list[str]:
    """Each place in ``source`` that writes SQL or hands a connection a statement, as ``line: what``."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            match = SQL.search(node.value)
            if match:
                found.append((node.lineno, f"{match.group(0)!r} in a string"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in STATEMENT_CALLS and CONNECTIONS.search(_receiver(node.func.value)):
                found.append((node.lineno, f"{_receiver(node.func.value)}.{node.func.attr}(...)"))
        elif isinstance(node, ast.Subscript) and CONNECTIONS.search(_receiver(node.value)):
            found.append((node.lineno, f"{_receiver(node.value)}[...]"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def _modules() -> dict[str, list[str]]:
    return {
        path.relative_to(ROOT).as_posix(): sql_in(path.read_text(encoding="utf-8"))
        for package in OUTSIDE
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_no_module_outside_storage_holds_sql() -> None:
    misplaced = {name: found for name, found in _modules().items() if found and name not in NOT_YET_MOVED}
    assert misplaced == {}, "move these statements into a storage/ module named for what they hold"


def test_each_module_still_exempted_still_holds_sql() -> None:
    modules = _modules()
    stale = sorted(name for name in NOT_YET_MOVED if name in modules and not modules[name])
    assert stale == [], "these hold no SQL any more: take them off NOT_YET_MOVED"


def test_the_search_finds_statements_and_connections_but_not_prose() -> None:
    source = '''
"""A module that SELECTs nothing in its docstring."""
def f(db, protocol, rows):
    """Nor in this one: SELECT it is not."""
    protocol.execute("NOOP")
    rows.query("where")
    db.execute("SELECT 1")
    db.conn.executemany(f"UPDATE t SET a = ? WHERE id = {1}", [])
    return db["touches"]
'''
    assert sql_in(source) == [
        "7: 'SELECT' in a string",
        "7: db.execute(...)",
        "8: 'UPDATE' in a string",
        "8: conn.executemany(...)",
        "9: db[...]",
    ]
