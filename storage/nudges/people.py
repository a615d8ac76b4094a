"""Who a nudge goes to: the person who handled the touch or owns the lead, else the team chat, else
the managers; read once per sweep."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses

from sqlite_utils import Database

from storage.nudges.rules import NudgeRules
from storage.staff import Person
from storage.unreachable import UNREACHABLE_SQL


@dataclass(frozen=True, slots=True)
class Recipient:
    """One chat a nudge is delivered to; ``staff_id`` None for the team chat."""

    chat_id: int
    staff_id: int | None


@dataclass(frozen=True)
class Directory:
    """Active staff who can be reached in Telegram, read once per sweep: a chat Telegram refused for
    good (``storage.unreachable``) is passed over, so its nudges go on down the line."""

    people: Mapping[int, Person]
    by_telegram: Mapping[int, int]
    by_email: Mapping[str, int]
    #: Owners first, then managers: who hears about escalations.
    managers: tuple[Person, ...]
    _recipients: dict[tuple[int | None, int | None, int | None], tuple[Recipient, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def load(cls, db: Database) -> Directory:
        people: dict[int, Person] = {}
        by_email: dict[str, int] = {}
        for sid, chat, name, role, language, emails in db.execute(
            "SELECT id, telegram_id, name, role, language, emails FROM staff"
            f" WHERE active = 1 AND telegram_id IS NOT NULL AND telegram_id NOT IN ({UNREACHABLE_SQL})"
            " ORDER BY id"
        ):
            people[int(sid)] = Person(int(sid), int(chat), str(name), str(role), language)
            for address in json.loads(emails or "[]"):
                by_email.setdefault(str(address).strip().lower(), int(sid))
        managers = tuple(
            sorted(
                (p for p in people.values() if p.role in ("owner", "manager")),
                key=lambda p: (p.role != "owner", p.id),
            )
        )
        return cls(people, {p.chat_id: p.id for p in people.values()}, by_email, managers)

    def mailbox_owner(self, to_address: str | None) -> int | None:
        """The staff member whose mailbox a letter was sent to. ``to_address`` is a header as written:
        ``Boris Petrov <boris@example.com>``, several recipients, a ``+tag`` the staff list omits."""
        if not to_address:
            return None
        for _, address in getaddresses([to_address]):
            address = address.strip().lower()
            local, at, domain = address.partition("@")
            for candidate in (address, f"{local.split('+', 1)[0]}{at}{domain}"):
                if candidate and candidate in self.by_email:
                    return self.by_email[candidate]
        return None

    def target(self, rules: NudgeRules, *candidates: int | None) -> tuple[int | None, int | None]:
        """(staff id, chat id) of a level-0 nudge: the first reachable candidate, else the team chat,
        else (None, None), which means the managers."""
        for staff_id in candidates:
            if staff_id is not None and staff_id in self.people:
                return staff_id, self.people[staff_id].chat_id
        if rules.team_chat:
            return None, rules.team_chat
        return None, None

    def source_owner(self, rules: NudgeRules, source: str) -> int | None:
        telegram_id = rules.source_owners.get(source)
        return None if telegram_id is None else self.by_telegram.get(telegram_id)

    def recipients(
        self, staff_id: int | None, chat_id: int | None, asked: int | None = None
    ) -> tuple[Recipient, ...]:
        """Who a nudge row goes to: its person, the team chat, or every manager but the one asked."""
        key = (staff_id, chat_id, asked)
        found = self._recipients.get(key)
        if found is None:
            found = self._recipients[key] = self._resolve(staff_id, chat_id, asked)
        return found

    def _resolve(self, staff_id: int | None, chat_id: int | None, asked: int | None) -> tuple[Recipient, ...]:
        if chat_id is not None:
            if staff_id is None:
                return (Recipient(chat_id, None),)
            person = self.people.get(staff_id)
            if person is not None:
                return (Recipient(person.chat_id, person.id),)
        return tuple(Recipient(p.chat_id, p.id) for p in self.managers if p.id != asked)
