"""A known November 2026 in Moscow, built through the storage functions capture and the bot use.

Every figure of this month is worked out by hand in ``test_reports.py``; the story of each contact
is written next to the code that makes it, so a reader can redo the arithmetic.
Calendar: Mon-Fri 09:00-18:00 Moscow, RU holidays (Wed 4 November is Unity Day).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from leadline.config import Config
from storage.attribution import CampaignIndex
from storage.calls import apply_call_event
from storage.costs import add_cost, sync_costs
from storage.db import open_database
from storage.events import CallEvent, ContactEvent
from storage.registrations import change_lead
from storage.registrations import record_registration as register
from storage.reports.scope import Rules
from storage.staff import sync_campaigns, sync_staff
from storage.touches import EventContext, record_contact_event
from tests.conftest import BASE, build_config

MSK = ZoneInfo("Europe/Moscow")

CAMPAIGNS: list[dict[str, Any]] = [
    {
        **BASE["campaigns"][0],
        "costs": [{"period": "2026-11", "item": "ads", "amount": 45000}],
    },
    {
        **BASE["campaigns"][1],
        # 61 days, so November (30 days) carries 30500 * 30 / 61 = 15000.
        "costs": [{"period": "2026-11..2026-12", "item": "ads", "amount": 30500}],
    },
]


def month_config(tmp_path: Path, **overrides: Any) -> Config:
    """The test config (conftest's BASE with this month's costs), also written to config.toml."""
    config = build_config(tmp_path, **{"campaigns": CAMPAIGNS, **overrides})
    data = config.model_dump(mode="json", exclude={"base_dir"}, exclude_defaults=True)
    data = {k: v for k, v in data.items() if v}
    for source, raw in zip(data.get("sources", []), config.sources, strict=True):
        for key in (
            "token",
            "secret",
            "app_secret",
            "verify_token",
            "confirmation",
            "vpbx_api_key",
            "vpbx_api_salt",
        ):
            if source.get(key):
                source[key] = raw.secret_value(key)
    (tmp_path / "config.toml").write_text(toml_dump(data), encoding="utf-8")
    return config


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_dump(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for a config: tables, arrays of tables, scalars and lists of scalars."""
    lines: list[str] = []
    nested: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in nested:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            lines.append(toml_dump(value, name + "."))
        else:
            for item in value:
                lines.append(f"\n[[{name}]]")
                lines.append(toml_dump(item, name + "."))
    return "\n".join(line for line in lines if line)


def msk(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


@contextmanager
def transaction(db: Database) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class Month:
    """Writes touches, registrations and lead moves as the pipeline and the bot would."""

    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config
        self.rules = Rules.from_config(config)
        self.campaigns = CampaignIndex.build(config.campaigns, "RU")
        with transaction(db):
            self.staff = sync_staff(db, config.staff, msk(1, 0))
            sync_campaigns(db, config.campaigns, msk(1, 0))
            sync_costs(db, config.campaigns, msk(1, 0))
        self._calls = 0

    def ctx(self, source: str, at: datetime) -> EventContext:
        return EventContext(
            source=source,
            received_at=at,
            region="RU",
            campaigns=self.campaigns,
            staff_by_extension={"101": self.staff["Anna"], "102": self.staff["Boris"]},
            callback_deadline=self.rules.callback_deadline,
        )

    def call(
        self,
        caller: str,
        at: datetime,
        *,
        answered: bool,
        extension: str | None = None,
        tracking: str | None = None,
        direction: str = "in",
    ) -> int:
        self._calls += 1
        event = CallEvent(
            call_id=f"call-{self._calls}",
            event_key=f"summary-{self._calls}",
            direction=direction,  # type: ignore[arg-type]
            status="answered" if answered else "missed",
            caller=caller,
            started_at=at,
            occurred_at=at,
            final=True,
            answered=answered,
            extension=extension,
            tracking_number=tracking,
        )
        with transaction(self.db):
            touch_id, created = apply_call_event(self.db, event, self.ctx("mango", at))
        assert touch_id is not None and created
        return touch_id

    def contact_event(self, channel: str, key: str, at: datetime, **fields: Any) -> int:
        event = ContactEvent(channel=channel, external_id=key, occurred_at=at, **fields)  # type: ignore[arg-type]
        with transaction(self.db):
            touch_id, created = record_contact_event(self.db, event, self.ctx(channel, at))
        assert created
        return touch_id

    def contact_of(self, touch_id: int) -> int:
        return int(self.db.execute("SELECT contact_id FROM touches WHERE id = ?", [touch_id]).fetchone()[0])

    def register(self, touch_id: int, disposition: str, at: datetime, staff: str, **kw: Any) -> Any:
        with transaction(self.db):
            return register(
                self.db,
                self.contact_of(touch_id),
                disposition,  # type: ignore[arg-type]
                at=at,
                staff_id=self.staff[staff],
                touch_id=touch_id,
                **kw,
            )

    def move(self, lead_id: int, at: datetime, stage: str, staff: str = "Anna", **kw: Any) -> None:
        with transaction(self.db):
            change_lead(self.db, lead_id, at=at, staff_id=self.staff[staff], stage=stage, **kw)  # type: ignore[arg-type]


def build_known_month(db: Database, config: Config) -> Month:
    m = Month(db, config)
    brand = "+7 495 000-00-55"  # brand_msk's tracking number

    # C1: calls twice on Mon 2 Nov (both answered by Anna, via brand_msk's number); Anna registers
    # a hot lead at 10:12: lag 12 min. Qualified, accepted on the holiday, won on Fri 20 Nov.
    c1 = m.call("8 (916) 000-00-01", msk(2, 10), answered=True, extension="101", tracking=brand)
    m.call("+79160000001", msk(2, 10, 30), answered=True, extension="101", tracking=brand)
    lead1 = m.register(c1, "lead", msk(2, 10, 12), "Anna", temperature="hot").lead_id
    m.move(lead1, msk(3, 11), "qualified")
    m.move(lead1, msk(4, 12), "accepted")
    m.move(lead1, msk(20, 12), "won", won_amount=100000)

    # C2: missed on Fri 6 Nov 17:50 (brand_msk). Boris calls back Mon 9 Nov 09:05 and reaches
    # them: deadline 30 working min = 10 on Friday + 20 on Monday = 09:20, so called back in time.
    # Anna registers a warm lead Mon 09:10: lag 10 (Fri) + 10 (Mon) = 20 min over the weekend.
    c2 = m.call("+79160000002", msk(6, 17, 50), answered=False, tracking=brand)
    m.call("+79160000002", msk(9, 9, 5), answered=True, extension="102", direction="out")
    lead2 = m.register(c2, "lead", msk(9, 9, 10), "Anna", temperature="warm").lead_id
    m.move(lead2, msk(10, 10), "qualified")
    m.move(lead2, msk(11, 10), "returned", reason="no decision maker")

    # C3: missed Tue 3 Nov 17:55, never called back; registered as a partner (not a lead) on
    # Thu 5 Nov 09:05: lag 5 (Tue) + 0 (Wed 4, Unity Day) + 5 (Thu) = 10 min.
    c3 = m.call("+79160000003", msk(3, 17, 55), answered=False)
    m.register(c3, "not_a_lead", msk(5, 9, 5), "Boris", reason="partner")

    # C4: a VK form on Saturday 7 Nov; Boris registers a cold lead Mon 9 Nov 09:30: lag 30 min.
    # It is lost a week later: no budget.
    c4 = m.contact_event(
        "form",
        "tilda:4",
        msk(7, 12),
        phones=("+7 916 000-00-04",),
        emails=("olga@example.org",),
        name="Olga",
        utm={"utm_source": "vk"},
    )
    lead4 = m.register(c4, "lead", msk(9, 9, 30), "Boris", temperature="cold").lead_id
    m.move(lead4, msk(16, 10), "lost", staff="Boris", reason="no_budget")

    # C5: mails sales@ (brand_msk) at 23:59 on Wed 11 Nov: that day, this month. Unregistered.
    m.contact_event(
        "email", "email:5", msk(11, 23, 59), emails=("petr@example.net",), to_address="sales@example.com"
    )

    # C6: an old contact: a form on 20 October, registered as a lead that day. Calls on Thu 12 Nov
    # (Boris answers). Registered before the period: counts as registered, is not new, has no lag.
    c6 = m.contact_event("form", "tilda:6", msk(20, 10, month=10), phones=("+79160000006",))
    m.register(c6, "lead", msk(20, 10, 20, month=10), "Anna", temperature="warm")
    m.call("+79160000006", msk(12, 11), answered=True, extension="102")

    # Hidden caller ID: one missed and one answered by Anna on Fri 13 Nov.
    m.call("anonymous", msk(13, 14), answered=False)
    m.call("", msk(13, 15), answered=True, extension="101")

    # C7: missed Mon 16 Nov 10:00; calls again at 11:00 and Boris answers: after the 10:30
    # deadline, so still missed, not called back. Boris registers a hot lead at 11:05 and says it
    # came from VK: lag 65 min from the first touch of the month. Qualified and accepted.
    c7 = m.call("+79160000007", msk(16, 10), answered=False)
    m.call("+79160000007", msk(16, 11), answered=True, extension="102")
    lead7 = m.register(c7, "lead", msk(16, 11, 5), "Boris", temperature="hot", campaign="vk_ads").lead_id
    m.move(lead7, msk(17, 10), "qualified")
    m.move(lead7, msk(18, 10), "accepted", staff="Boris")

    # C8: a blocked number calls on Tue 17 Nov: counted apart, not inbound.
    with transaction(db):
        db.execute(
            "INSERT INTO blocklist (kind, value, reason, at) VALUES ('phone', '+79160000008', 'spam', ?)",
            ["2026-11-01T00:00:00.000000+00:00"],
        )
    m.call("+79160000008", msk(17, 12), answered=True, extension="101")

    # C9: a form at 23:59 on Mon 30 Nov (in); C10 at 00:00 on 1 December (out); an outbound
    # call to a new number on Wed 18 Nov (not inbound).
    m.contact_event("form", "tilda:9", msk(30, 23, 59), phones=("+79160000009",))
    m.contact_event("form", "tilda:10", datetime(2026, 12, 1, 0, 0, tzinfo=MSK), phones=("+79160000010",))
    m.call("+79160000011", msk(18, 15), answered=True, extension="101", direction="out")

    # Costs: brand_msk 45 000 (config), vk_ads 15 000 of its 30 500 (config) + 5 000 from the bot.
    with transaction(db):
        add_cost(db, "vk_ads", "2026-11", 5000, at=msk(1, 12), item="design", origin="bot")
    return m


def open_month(path: Path, config: Config) -> Month:
    db = open_database(path)
    return build_known_month(db, config)


NOVEMBER = date(2026, 11, 1)
AS_OF = msk(1, 9, month=12)
