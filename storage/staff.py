"""Staff and campaigns from the config, mirrored into the database at start-up.

The config is where the owner writes who works here; the database is where the bot adds people it
approved and where reports join. Syncing keeps one id per person across both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlite_utils import Database

from storage.db import iso

if TYPE_CHECKING:
    from leadline.config import CampaignConfig, StaffConfig


def sync_staff(db: Database, staff: Iterable[StaffConfig], at: datetime) -> dict[str, int]:
    """Upsert config staff by Telegram id; returns name → staff id."""
    ids: dict[str, int] = {}
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
    for campaign in campaigns:
        db.execute(
            "INSERT INTO campaigns (name, kind, from_config, created_at) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, from_config = 1",
            [campaign.name, campaign.kind, iso(at)],
        )
