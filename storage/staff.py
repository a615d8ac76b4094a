"""Staff and campaigns: mirrored from the config at start-up, and read back as the bot needs them.

The config is where the owner writes who works here; the database is where the bot adds people it
approved and where reports join. Syncing keeps one id per person across both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from storage.attribution import campaign_named
from storage.db import iso
from storage.errors import NoCampaign

if TYPE_CHECKING:
    from leadline.config import CampaignConfig, StaffConfig


def sync_staff(db: Database, staff: Iterable[StaffConfig], at: datetime) -> dict[str, int]:
    """Upsert config staff by Telegram id; returns name → staff id.

    Someone taken out of ``[[staff]]`` is let in no more: only the config lets its people in. People
    an owner approved from chat were never in it, and stay.
    """
    staff = list(staff)
    ids: dict[str, int] = {}
    db.execute(
        "UPDATE staff SET active = 0 WHERE from_config = 1 AND active = 1"
        " AND telegram_id NOT IN (SELECT value FROM json_each(?))",
        [json.dumps([person.telegram_id for person in staff])],
    )
    for person in staff:
        row = db.execute("SELECT id FROM staff WHERE telegram_id = ?", [person.telegram_id]).fetchone()
        values = [
            person.name,
            person.role,
            person.language,
            json.dumps(person.extensions),
            json.dumps(person.emails),
        ]
        if row:
            db.execute(
                "UPDATE staff SET name = ?, role = ?, language = ?, extensions = ?, emails = ?, from_config = 1,"
                " active = 1 WHERE id = ?",
                [*values, row[0]],
            )
            ids[person.name] = int(row[0])
        else:
            cursor = db.execute(
                "INSERT INTO staff (name, role, language, extensions, emails, from_config, telegram_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                [*values, person.telegram_id, iso(at)],
            )
            ids[person.name] = int(cursor.lastrowid or 0)
    return ids


def config_staff_ids(db: Database, staff: Iterable[StaffConfig]) -> dict[str, int]:
    """Name → staff id of the config's people as :func:`sync_staff` left them, without writing."""
    ids: dict[str, int] = {}
    for person in staff:
        row = db.execute("SELECT id FROM staff WHERE telegram_id = ?", [person.telegram_id]).fetchone()
        if row:
            ids[person.name] = int(row[0])
    return ids


def staff_by_extension(db: Database) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for staff_id, extensions in db.execute("SELECT id, extensions FROM staff WHERE active = 1"):
        for ext in json.loads(extensions):
            mapping[str(ext)] = int(staff_id)
    return mapping


def sync_campaigns(db: Database, campaigns: Iterable[CampaignConfig], at: datetime) -> None:
    """Upsert config campaigns by name.

    A campaign taken out of ``[[campaigns]]`` (ended, or renamed) can be chosen and costed no more,
    as staff taken out of ``[[staff]]`` are let in no more; its row stays, since its past leads and
    costs stay in the reports under its name.
    """
    campaigns = list(campaigns)
    db.execute(
        "UPDATE campaigns SET from_config = 0 WHERE from_config = 1"
        " AND name NOT IN (SELECT value FROM json_each(?))",
        [json.dumps([campaign.name for campaign in campaigns])],
    )
    for campaign in campaigns:
        db.execute(
            "INSERT INTO campaigns (name, kind, from_config, created_at) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, from_config = 1",
            [campaign.name, campaign.kind, iso(at)],
        )


@dataclass(frozen=True, slots=True)
class StaffMember:
    id: int
    name: str
    telegram_id: int | None
    role: str
    language: str | None

    @property
    def is_manager(self) -> bool:
        """Managers and owners see and change everyone's work."""
        return self.role in ("owner", "manager")


@dataclass(frozen=True, slots=True)
class Person:
    """A staff member the bot writes to (cards on arrival, nudges): ``chat_id`` is their Telegram id."""

    id: int
    chat_id: int
    name: str
    role: str
    language: str | None


_STAFF = "SELECT id, name, telegram_id, role, language FROM staff"


def _staff(row: Any) -> StaffMember:
    return StaffMember(int(row[0]), str(row[1]), row[2], str(row[3]), row[4])


def staff_named(db: Database, name: str) -> int | None:
    """The id of one row called ``name``, in any letter case; a report takes a name by
    :func:`staff_called`, which has every such row."""
    row = db.execute("SELECT id FROM staff WHERE lower(name) = lower(?)", [name]).fetchone()
    return int(row[0]) if row else None


def staff_called(db: Database, name: str) -> tuple[int, ...]:
    """Every staff row under the name ``name`` means, in any letter case (the exact spelling wins, as
    for campaigns): how ``leadline report --staff`` and the API's ``staff=`` take a person. Reports
    group people by name, and one person may have several rows (a new Telegram account leaves the old
    one, inactive, under the same name), so a report narrowed to a name must count what that name's
    group counts. Empty when nobody is called so."""
    rows = [(int(i), str(n)) for i, n in db.execute("SELECT id, name FROM staff ORDER BY id")]
    spelling = campaign_named(name, [known for _id, known in rows])
    return tuple(i for i, known in rows if known == spelling)


def staff_by_telegram(db: Database, telegram_id: int) -> StaffMember | None:
    row = db.execute(f"{_STAFF} WHERE telegram_id = ? AND active = 1", [telegram_id]).fetchone()
    return _staff(row) if row else None


def active_staff(db: Database) -> list[StaffMember]:
    return [_staff(r) for r in db.execute(f"{_STAFF} WHERE active = 1 ORDER BY name, id")]


def former_staff(db: Database) -> list[StaffMember]:
    """People no longer let in, whom Telegram may still show what they could once do."""
    return [_staff(r) for r in db.execute(f"{_STAFF} WHERE active = 0 AND telegram_id IS NOT NULL")]


def owners(db: Database) -> list[StaffMember]:
    return [
        _staff(r)
        for r in db.execute(f"{_STAFF} WHERE active = 1 AND role = 'owner' AND telegram_id IS NOT NULL")
    ]


def campaigns(db: Database, *, past: bool = False) -> list[tuple[int, str]]:
    """The campaigns a lead or a cost may be put under: the config's (see :func:`sync_campaigns`);
    with ``past``, also those taken out of it, whose leads and costs the reports still show."""
    where = "" if past else " WHERE from_config = 1"
    return [
        (int(r[0]), str(r[1])) for r in db.execute(f"SELECT id, name FROM campaigns{where} ORDER BY name")
    ]


def known_campaign(db: Database, name: str, *, past: bool = False) -> str:
    """The campaign ``name`` means (any letter case), as the config spells it: how the API and the
    command line take a campaign a person typed; ``past`` for a report, which may ask about one taken
    out of the config. Raises :class:`NoCampaign` with the names it could have been."""
    names = [known for _id, known in campaigns(db, past=past)]
    found = campaign_named(name, names)
    if found is None:
        raise NoCampaign(name, tuple(names))
    return found


def campaign_name(db: Database, campaign_id: int) -> str | None:
    """The name behind a picker button; none for a campaign taken out of the config since it was drawn."""
    row = db.execute("SELECT name FROM campaigns WHERE id = ? AND from_config = 1", [campaign_id]).fetchone()
    return str(row[0]) if row else None
