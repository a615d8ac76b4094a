"""A card on arrival, one at a time: the rules it is given by, what it shows, who it goes to, and
its message drawn again.

The arrival pass (``storage/arrivals.py``) opens, folds and closes cards with these; a card given
on afterwards (``storage/card_moves.py``) is drawn and addressed by the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from sqlite_utils import Database

from storage.assign import Candidate, Mode, assign, present
from storage.cards import TouchCard, lead_card, touch_card
from storage.chat_moves import current_chat
from storage.db import iso
from storage.outbox import enqueue
from storage.registrations import Registration
from storage.staff import Person
from storage.unreachable import UNREACHABLE_SQL, is_unreachable
from storage.worktime import WorkingCalendar

if TYPE_CHECKING:
    from leadline.config import Config, HoursSection


ArrivalKind = Literal["register", "callback", "repeat"]


@dataclass(frozen=True)
class ArrivalRules:
    """The config's part in the arrival pass, read once."""

    calendar: WorkingCalendar
    on_arrival: bool = True
    hold: bool = True
    callback_outside_hours: bool = False
    burst_minutes: float = 5
    team_chat: int = 0
    mode: Mode = "round_robin"
    #: Who takes forms and letters by round robin, by name, in the config's order.
    round_robin: tuple[str, ...] = ()
    shifts: Mapping[str, HoursSection | None] = field(default_factory=dict)
    #: Source name → the name of its owner (config ``owner``).
    source_owners: Mapping[str, str] = field(default_factory=dict)
    language: str = "ru"
    horizon_days: int = 14
    #: The sources whose PBX can ring a staff member and then the client (``capture.dial.dialable``,
    #: given by the composition root or the bot's dialer): their missed calls' cards offer 📞.
    dialable: frozenset[str] = frozenset()

    def call_back(self, card: TouchCard) -> bool:
        """Whether a missed call's card offers 📞 Call back: its source can dial, and there is a number."""
        return card.touch["source"] in self.dialable and bool(card.phones)

    @classmethod
    def from_config(cls, config: Config) -> ArrivalRules:
        return cls(
            calendar=WorkingCalendar.from_config(config.working_time, config.tz),
            on_arrival=config.notify.on_arrival,
            hold=config.notify.outside_hours == "hold",
            callback_outside_hours=config.sla.callback_outside_hours,
            burst_minutes=config.notify.burst_minutes,
            team_chat=config.telegram.team_chat,
            mode=config.assign.mode,
            round_robin=tuple(config.assign.staff),
            shifts={s.name: s.shift for s in config.staff},
            source_owners={s.name: s.owner for s in config.sources if s.owner},
            language=config.leadline.language,
            horizon_days=config.nudges.horizon_days,
        )

    @property
    def tz(self) -> ZoneInfo:
        return self.calendar.tz


@dataclass(frozen=True, slots=True)
class ArrivalView:
    """Everything a card's renderer needs, without the database."""

    kind: ArrivalKind
    chat_id: int
    language: str
    office_language: str
    tz: ZoneInfo
    touch_id: int
    card: TouchCard
    #: Touches of this contact's burst the card stands for.
    count: int
    #: A ``repeat`` card's lead (``storage.cards.lead_card``).
    lead: dict[str, Any] | None = None
    #: Set once the contact is registered: the card shows by whom and loses its buttons.
    registered: Registration | None = None
    #: Whether the office line can ring the staff member and then the client (a PBX with API access).
    call_back: bool = False
    #: Set once the missed call was called back: the card says so and loses its buttons.
    called_back: bool = False
    #: Set once a manager gave the card to someone else: the name it went to; the card loses its buttons.
    given_to: str | None = None


Render = Callable[[ArrivalView], dict[str, Any]]


def staff_on_telegram(db: Database, *, reachable: bool = False) -> dict[int, Person]:
    """The staff on Telegram; with ``reachable``, without those whose chat Telegram refused for good
    (who get no new card until they write to the bot again)."""
    unreachable = f" AND telegram_id NOT IN ({UNREACHABLE_SQL})" if reachable else ""
    return {
        int(r[0]): Person(int(r[0]), int(r[1]), str(r[2]), str(r[3]), r[4])
        for r in db.execute(
            "SELECT id, telegram_id, name, role, language FROM staff"
            f" WHERE active = 1 AND telegram_id IS NOT NULL{unreachable} ORDER BY id"
        )
    }


def person_of(people: Mapping[int, Person], staff_id: int | None) -> Person | None:
    return people.get(staff_id) if staff_id is not None else None


class ArrivalPass:
    """What one pass's steps share: its write, its moment, the rules, the staff, and round robin's
    counts of what each person was given today, calls aside.

    The counts are read once per person per pass, then kept up to date as the pass gives touches
    out, so a flood of forms costs a count per pass rather than one per form.
    """

    def __init__(
        self, db: Database, now: datetime, rules: ArrivalRules, render: Render, working: bool
    ) -> None:
        if rules.team_chat:
            rules = replace(rules, team_chat=current_chat(db, rules.team_chat))
        if rules.team_chat and is_unreachable(db, rules.team_chat):
            rules = replace(rules, team_chat=0)
        self.db, self.now, self.rules, self.render = db, now, rules, render
        #: Whether the office works now: a person without a shift is on only then.
        self.working = working
        self.people = staff_on_telegram(db, reachable=True)
        self.local = now.astimezone(rules.tz)
        self.day_start = iso(self.local.replace(hour=0, minute=0, second=0, microsecond=0))
        self.counts: dict[int, int] = {}
        self._judged: list[tuple[str, int]] = []

    def judge(self, touch_id: int, arrival: str) -> None:
        """A touch that needs no card, or waits for working time: written at the pass's end, in one
        statement, since nothing in the pass reads it back."""
        self._judged.append((arrival, touch_id))

    def write_judged(self) -> None:
        # Only ``arrival``: a touch nobody was given keeps its NULL assignee, two indexes left alone.
        self.db.conn.executemany("UPDATE touches SET arrival = ? WHERE id = ?", self._judged)
        self._judged.clear()

    def today(self, staff_id: int) -> int:
        """What the person was given since the day began, however long ago it arrived: the forms
        held overnight are given out at opening, and count for that day."""
        if staff_id not in self.counts:
            self.counts[staff_id] = int(
                self.db.execute(
                    "SELECT COUNT(*) FROM touches WHERE assignee_id = ? AND given_at >= ?"
                    " AND assignee_id IS NOT NULL AND channel != 'call'",
                    [staff_id, self.day_start],
                ).fetchone()[0]
            )
        return self.counts[staff_id]

    def gave(self, staff_id: int | None, channel: str) -> None:
        if staff_id is not None and channel != "call" and staff_id in self.counts:
            self.counts[staff_id] += 1


def assignee(p: ArrivalPass, source: str) -> Person | None:
    """The assignee of a form, a letter, or a call no extension took (:func:`storage.assign.assign`)."""
    rules, people = p.rules, p.people
    by_name = {p.name: p for p in people.values()}
    owner_name = rules.source_owners.get(source)
    source_owner = by_name.get(owner_name) if owner_name else None
    candidates = []
    shifts = [rules.shifts.get(name) for name in rules.round_robin]
    holiday = any(shifts) and rules.calendar.is_holiday(p.local.date())
    for name, shift in zip(rules.round_robin, shifts, strict=True):
        person = by_name.get(name)
        if person is None:
            continue
        on = present(shift, p.local, working=p.working, holiday=holiday)
        candidates.append(Candidate(person.id, on, p.today(person.id)))
    owner = next((p.id for p in people.values() if p.role == "owner"), None)
    chosen = assign(rules.mode, candidates, source_owner.id if source_owner else None, owner)
    return person_of(people, chosen.staff_id)


def owners_and_managers(people: Mapping[int, Person]) -> list[Person]:
    return sorted(
        (p for p in people.values() if p.role in ("owner", "manager")),
        key=lambda p: (p.role != "owner", p.id),
    )


def language_of(rules: ArrivalRules, people: Mapping[int, Person], staff_id: int | None) -> str:
    person = people.get(staff_id) if staff_id is not None else None
    return (person.language if person else None) or rules.language


def view_of(
    p: ArrivalPass,
    touch_id: int,
    kind: ArrivalKind,
    chat_id: int,
    staff_id: int | None,
    count: int,
    lead_id: int | None,
) -> ArrivalView | None:
    """What a card about the touch shows; None, with the touch judged to need no card, when it is gone."""
    db, rules = p.db, p.rules
    card = touch_card(db, touch_id)
    if card is None:
        p.judge(touch_id, "none")
        return None
    lead = lead_card(db, lead_id) if lead_id is not None else None
    return ArrivalView(
        kind, chat_id, language_of(rules, p.people, staff_id), rules.language, rules.tz, touch_id, card, count, lead,
        call_back=rules.call_back(card),
    )  # fmt: skip


def redraw(
    db: Database,
    now: datetime,
    chat_id: int,
    outbox_id: int,
    status: str,
    message_id: int | None,
    payload: dict[str, Any],
) -> list[int]:
    """A card drawn again: its queued message rewritten while unsent, else an edit of the sent one."""
    if status == "pending":
        db.execute(
            "UPDATE outbox SET payload = ? WHERE id = ?", [json.dumps(payload, ensure_ascii=False), outbox_id]
        )
        return []
    if message_id is None:
        return []
    edit = {**payload, "message_id": int(message_id)}
    edit.setdefault("reply_markup", {"inline_keyboard": []})
    new = enqueue(db, chat_id, edit, at=now, method="editMessageText")
    return [new] if new is not None else []


def card_view(db: Database, touch_id: int, rules: ArrivalRules) -> ArrivalView | None:
    """The open card that a touch's buttons were drawn on, as it is now (to draw its buttons again)."""
    row = db.execute(
        "SELECT kind, chat_id, staff_id, touches, lead_id FROM arrival_cards"
        " WHERE last_touch_id = ? AND closed_at IS NULL ORDER BY id DESC LIMIT 1",
        [touch_id],
    ).fetchone()
    card = touch_card(db, touch_id)
    if row is None or card is None:
        return None
    kind, chat_id, staff_id, count, lead_id = row
    lead = lead_card(db, int(lead_id)) if lead_id is not None else None
    language = language_of(rules, staff_on_telegram(db), staff_id)
    return ArrivalView(
        kind, int(chat_id), language, rules.language, rules.tz, touch_id, card, int(count), lead,
        call_back=rules.call_back(card),
    )  # fmt: skip


def open_card_message(db: Database, contact_id: int, chat_id: int) -> int | None:
    """The Telegram message id of the newest open card about a contact in a chat, for a nudge to reply to."""
    row = db.execute(
        "SELECT o.message_id FROM arrival_cards a JOIN outbox o ON o.id = a.outbox_id"
        " WHERE a.contact_id = ? AND a.chat_id = ? AND a.closed_at IS NULL AND o.message_id IS NOT NULL"
        " ORDER BY a.id DESC LIMIT 1",
        [contact_id, chat_id],
    ).fetchone()
    return int(row[0]) if row else None
