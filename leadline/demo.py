"""A realistic stretch of a small office's inbound flow, for ``leadline demo`` and ``bench/report.py``.

A newcomer with no PBX wired yet should see Leadline work in a minute, on data that looks like
theirs will: calls through Mango and Zadarma with repeats, missed calls, call-backs and hidden
numbers, Tilda forms with UTM tags, mail through Postmark, registrations at realistic lags, leads
moving through the stages, and campaign costs. So the generator writes the wire formats the real
providers send, signed with the demo sources' secrets, and the demo hands each request to
:meth:`Capture.ingest`: the same verify → journal → parse → store path a live request takes.

The story is a plain list of timed actions from a seeded random generator, so a run is
reproducible; :func:`story` makes it and two writers replay it: :func:`run_demo` (through the
capture service and the registrations module, one request at a time) and :func:`write_direct`
(the same parsers and storage functions in large transactions, for the benchmark's million touches).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from sqlite_utils import Database

from capture import journal
from capture.pipeline import Capture, apply_events, parse_request, provider_for
from capture.providers.base import RawRequest, make_headers
from leadline.config import Config, SourceConfig
from leadline.load import parse_config
from storage.cards import leads_of_contact
from storage.contacts import find_by_identifier
from storage.errors import RegistrationError
from storage.identifiers import email, phone
from storage.register import Person, register
from storage.registrations import Draft, change_lead
from storage.staff import staff_named
from storage.touches import EventContext
from storage.worktime import WorkingCalendar

DEMO_SECRETS = {
    "mango": {"vpbx_api_key": "demo-mango-key", "vpbx_api_salt": "demo-mango-salt"},
    "zadarma": {"api_secret": "demo-zadarma-secret"},
    "tilda": {"token": "demo-tilda-token"},
    "postmark": {"username": "demo", "password": "demo-postmark-password"},
}

DEMO_STAFF: list[dict[str, Any]] = [
    {"name": "Anna", "telegram_id": 111111111, "role": "owner", "extensions": ["101"]},
    {"name": "Boris", "telegram_id": 222222222, "role": "staff", "extensions": ["102"]},
    {"name": "Vera", "telegram_id": 333333333, "role": "manager", "extensions": ["103"]},
]

#: Each campaign: how people find it (tracking number / UTM / address) and its cost per 30 days.
DEMO_CAMPAIGNS: list[dict[str, Any]] = [
    {
        "name": "brand_msk",
        "title": "Brand search, Moscow",
        "tracking_numbers": ["+74950000055"],
        "utm_campaign": ["brand_msk"],
        "emails": ["sales@example.com"],
        "monthly": {"ads": 45000},
    },
    {
        "name": "yandex_direct",
        "title": "Yandex Direct",
        "tracking_numbers": ["+74950000066"],
        "utm_source": ["yandex"],
        "monthly": {"ads": 60000, "telephony": 4000},
    },
    {"name": "vk_ads", "title": "VK ads", "utm_source": ["vk"], "monthly": {"ads": 24000}},
    {
        "name": "cold_calls",
        "title": "Cold calls",
        "monthly": {"wages": 30000, "desk": 6000, "phone_internet": 3000},
    },
]
LINE = "+74950000001"  # the office's main number: no campaign of its own
REASONS = ("partner", "job_seeker", "spam", "wrong_number", "existing_client", "other")
LOST_REASONS = ("price", "no_budget", "chose_competitor", "no_answer", "timing")
#: Where the demo's staff would record a touch entered by hand: the bot's source for them.
STAFF_SOURCE = "telegram"

Kind = Literal["call", "form", "mail", "register", "move"]


@dataclass(frozen=True)
class Action:
    """One thing that happens at ``at``: a request arrives, or a person registers or moves a lead."""

    at: datetime
    kind: Kind
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Shape:
    """How busy the office is; the defaults are a small office's fortnight."""

    days: int = 14
    people_per_workday: float = 14.0
    people_per_weekend_day: float = 3.0
    #: Average inbound touches per person (repeat calls, a form then a call...).
    touches_per_person: float = 1.6
    hidden_share: float = 0.05
    missed_share: float = 0.22
    callback_share: float = 0.7
    registered_share: float = 0.82
    lead_share: float = 0.72
    cold_calls_per_workday: float = 8.0
    seed: int = 7
    #: Where person and call numbering starts, so that stories of consecutive stretches join up.
    offset: int = 0


def demo_config(base: Config, database: Path, period: tuple[date, date]) -> Config:
    """The user's zone, hours, SLAs and goals with the demo's staff, campaigns, costs and sources."""
    days = (period[1] - period[0]).days + 1
    span = f"{period[0].isoformat()}..{period[1].isoformat()}"
    campaigns = []
    for c in DEMO_CAMPAIGNS:
        costs = [
            {"period": span, "item": item, "amount": round(amount * days / 30)}
            for item, amount in c["monthly"].items()
        ]
        campaigns.append({**{k: v for k, v in c.items() if k != "monthly"}, "costs": costs})
    data: dict[str, Any] = {
        "leadline": {**base.leadline.model_dump(), "database": str(database)},
        "http": base.http.model_dump(),
        "working_time": base.working_time.model_dump(mode="json"),
        "sla": base.sla.model_dump(),
        "digest": base.digest.model_dump(),
        "goals": base.goals.model_dump(exclude_none=True) or {"leads": 150, "qualified": 40, "clients": 8},
        "staff": DEMO_STAFF,
        "campaigns": campaigns,
        "sources": [
            {"name": "mango", "provider": "mango", **DEMO_SECRETS["mango"]},
            {"name": "zadarma", "provider": "zadarma", **DEMO_SECRETS["zadarma"]},
            {"name": "tilda", "provider": "tilda", **DEMO_SECRETS["tilda"]},
            {"name": "mail", "provider": "postmark", **DEMO_SECRETS["postmark"], "campaign": "brand_msk"},
        ],
    }
    return parse_config(data, base.base_dir)


# -- the story -----------------------------------------------------------------------------------


class _Story:
    def __init__(self, shape: Shape, start: date, calendar: WorkingCalendar) -> None:
        self.shape = shape
        self.start = start
        self.calendar = calendar
        self.tz = calendar.tz
        self.rnd = random.Random(shape.seed)
        self.actions: list[Action] = []
        self.people = shape.offset
        self.calls = shape.offset * 4
        self.deals = 0

    def moment(self, day: date) -> datetime:
        """When someone gets in touch: mostly office hours, some evenings, a few at night."""
        r = self.rnd.random()
        if r < 0.8:
            minute = self.rnd.uniform(9 * 60, 18 * 60)
        elif r < 0.95:
            minute = self.rnd.uniform(18 * 60, 23 * 60)
        else:
            minute = self.rnd.uniform(7 * 60, 9 * 60)
        return datetime.combine(day, time(0), tzinfo=self.tz) + timedelta(minutes=minute)

    def count(self, mean: float) -> int:
        """A Poisson draw (Knuth's method for small means, a rounded normal for large ones)."""
        if mean > 30:
            return max(0, round(self.rnd.gauss(mean, math.sqrt(mean))))
        limit, k, p = math.exp(-mean), 0, 1.0
        while True:
            p *= self.rnd.random()
            if p <= limit:
                return k
            k += 1

    def run(self) -> list[Action]:
        for offset in range(self.shape.days):
            day = self.start + timedelta(days=offset)
            working = self.calendar.is_working_day(day)
            mean = self.shape.people_per_workday if working else self.shape.people_per_weekend_day
            for _ in range(self.count(mean)):
                self.person(self.moment(day))
            if working:
                for _ in range(self.count(self.shape.cold_calls_per_workday)):
                    self.cold_call(self.moment(day))
        self.actions.sort(key=lambda a: a.at)
        return self.actions

    def new_phone(self) -> str:
        self.people += 1
        return f"+7916{self.people:07d}"

    def person(self, first: datetime) -> None:
        rnd, shape = self.rnd, self.shape
        if rnd.random() < shape.hidden_share:
            self.call(first, None, answered=rnd.random() > 0.5, tracking=self.tracking())
            return
        number = self.new_phone()
        email = f"client{self.people}@example.org"
        channel = rnd.choices(("call", "form", "mail"), (0.62, 0.26, 0.12))[0]
        touches = 1 + self.count(max(shape.touches_per_person - 1, 0))
        at = first
        handled_by: str | None = None
        utm = self.utm()
        for i in range(touches):
            kind = channel if i == 0 else rnd.choices(("call", "form", "mail"), (0.8, 0.1, 0.1))[0]
            if kind == "call":
                answered = rnd.random() > shape.missed_share
                extension = rnd.choice(("101", "102", "103")) if answered else None
                self.call(at, number, answered=answered, extension=extension, tracking=self.tracking())
                handled_by = handled_by or extension
                if not answered and rnd.random() < shape.callback_share:
                    back = self.calendar.add_working_minutes(at, rnd.uniform(2, 40))
                    self.call(
                        back, number, answered=True, extension=rnd.choice(("101", "102")), direction="out"
                    )
            elif kind == "form":
                self.actions.append(
                    Action(
                        at,
                        "form",
                        {"phone": number, "email": email, "name": f"Client {self.people}", "utm": utm},
                    )
                )
            else:
                self.actions.append(Action(at, "mail", {"email": email, "name": f"Client {self.people}"}))
            at = at + timedelta(
                minutes=rnd.choice((5, 30, 120, 60 * 24, 60 * 24 * 3)) * rnd.uniform(0.5, 1.5)
            )
        if rnd.random() < shape.registered_share:
            lag = rnd.lognormvariate(math.log(9), 1.1)  # median 9 working minutes, p90 about 37
            self.registration(number, self.calendar.add_working_minutes(first, lag), handled_by, email=email)

    def cold_call(self, at: datetime) -> None:
        number = self.new_phone()
        answered = self.rnd.random() < 0.45
        self.call(at, number, answered=answered, extension="102", direction="out")
        if answered and self.rnd.random() < 0.35:
            when = at + timedelta(minutes=self.rnd.uniform(3, 10))
            self.registration(number, when, "102", campaign="cold_calls")

    def tracking(self) -> str:
        return self.rnd.choices(("+74950000055", "+74950000066", LINE), (0.35, 0.35, 0.3))[0]

    def utm(self) -> dict[str, str]:
        choice = self.rnd.choices(("brand", "yandex", "vk", "none"), (0.3, 0.3, 0.25, 0.15))[0]
        return {
            "brand": {"utm_source": "google", "utm_campaign": "brand_msk"},
            "yandex": {"utm_source": "yandex", "utm_medium": "cpc"},
            "vk": {"utm_source": "vk", "utm_medium": "social"},
            "none": {},
        }[choice]

    def call(
        self,
        at: datetime,
        number: str | None,
        *,
        answered: bool,
        extension: str | None = None,
        tracking: str | None = None,
        direction: str = "in",
    ) -> None:
        self.calls += 1
        provider = "mango" if self.rnd.random() < 0.65 else "zadarma"
        ring = self.rnd.uniform(5, 30)
        talk = self.rnd.uniform(40, 600) if answered else 0.0
        self.actions.append(
            Action(
                at + timedelta(seconds=ring + talk),
                "call",
                {
                    "provider": provider,
                    "id": self.calls,
                    "number": number,
                    "answered": answered,
                    "extension": extension,
                    "tracking": tracking,
                    "direction": direction,
                    "started": at,
                    "talk_at": at + timedelta(seconds=ring),
                    "talk_s": int(talk),
                },
            )
        )

    def registration(
        self,
        number: str,
        at: datetime,
        extension: str | None,
        campaign: str | None = None,
        email: str | None = None,
    ) -> None:
        rnd = self.rnd
        staff = {"101": "Anna", "102": "Boris", "103": "Vera"}.get(
            extension or "", rnd.choice(("Anna", "Boris", "Vera"))
        )
        if campaign is None and rnd.random() > self.shape.lead_share:
            reason = rnd.choices(REASONS, (0.2, 0.15, 0.2, 0.15, 0.2, 0.1))[0]
            data = {"number": number, "email": email, "disposition": "not_a_lead", "reason": reason}
            self.actions.append(Action(at, "register", {**data, "staff": staff}))
            return
        temperature = rnd.choices(("hot", "warm", "cold"), (0.25, 0.45, 0.3))[0]
        data = {
            "number": number,
            "email": email,
            "disposition": "lead",
            "temperature": temperature,
            "staff": staff,
            "campaign": campaign,
        }
        self.actions.append(Action(at, "register", data))
        step = at
        r = rnd.random()
        if r < 0.12:
            self.move(
                step + timedelta(days=rnd.uniform(1, 5)), number, "lost", rnd.choice(LOST_REASONS), staff
            )
            return
        if r > 0.45:
            return  # still new
        step += timedelta(hours=rnd.uniform(2, 48))
        self.move(step, number, "qualified", None, "Vera")
        r = rnd.random()
        if r < 0.15:
            self.move(
                step + timedelta(hours=rnd.uniform(2, 24)),
                number,
                "returned",
                "not the target audience",
                "Anna",
            )
            return
        if r > 0.8:
            return
        step += timedelta(hours=rnd.uniform(2, 48))
        self.move(step, number, "accepted", None, "Anna")
        r = rnd.random()
        step += timedelta(days=rnd.uniform(1, 9))
        if r < 0.32:
            self.deals += 1
            amount = round(rnd.uniform(40, 250)) * 1000
            self.actions.append(
                Action(step, "move", {"number": number, "stage": "won", "amount": amount, "staff": "Anna"})
            )
        elif r < 0.6:
            self.move(step, number, "lost", rnd.choice(LOST_REASONS), "Anna")

    def move(self, at: datetime, number: str, stage: str, reason: str | None, staff: str) -> None:
        self.actions.append(
            Action(at, "move", {"number": number, "stage": stage, "reason": reason, "staff": staff})
        )


def story(shape: Shape, start: date, calendar: WorkingCalendar) -> list[Action]:
    """Every action of ``shape.days`` days from ``start``, in time order; same seed, same story."""
    return _Story(shape, start, calendar).run()


# -- the wire formats ----------------------------------------------------------------------------


def _raw(
    source: str, path: str, body: bytes, at: datetime, headers: dict[str, str], query: str = ""
) -> RawRequest:
    return RawRequest(
        source=source,
        method="POST",
        path=path,
        query_string=query,
        headers=make_headers(headers),
        body=body,
        received_at=at.astimezone(UTC),
        url=f"https://demo.invalid/hooks/{source}{path}" + (f"?{query}" if query else ""),
        remote="127.0.0.1",
    )


def _mango(action: Action) -> list[RawRequest]:
    d = action.data
    inbound = d["direction"] == "in"
    outside = {"number": d["number"].lstrip("+")} if d["number"] else {}
    ours = {"extension": d["extension"]} if d["extension"] else {}
    summary: dict[str, Any] = {
        "entry_id": base64.b64encode(f"demo:{d['id']}".encode()).decode(),
        "call_direction": 1 if inbound else 2,
        "from": outside if inbound else ours,
        "to": ours if inbound else outside,
        "line_number": LINE.lstrip("+"),
        "create_time": int(d["started"].timestamp()),
        "forward_time": int(d["started"].timestamp()) + 2,
        "talk_time": int(d["talk_at"].timestamp()) if d["answered"] else 0,
        "end_time": int(action.at.timestamp()),
        "entry_result": 1 if d["answered"] else 0,
        "disconnect_reason": 1110 if d["answered"] else 1111,
    }
    if inbound and d["tracking"] and d["tracking"] != LINE:
        summary["dct"] = {"number": d["tracking"].lstrip("+"), "type": 2}
    payload = json.dumps(summary, separators=(",", ":"))
    key, salt = DEMO_SECRETS["mango"]["vpbx_api_key"], DEMO_SECRETS["mango"]["vpbx_api_salt"]
    sign = hashlib.sha256((key + payload + salt).encode()).hexdigest()
    body = urlencode({"vpbx_api_key": key, "sign": sign, "json": payload}).encode()
    return [
        _raw(
            "mango", "/events/summary", body, action.at, {"Content-Type": "application/x-www-form-urlencoded"}
        )
    ]


def _zadarma_signed(fields: dict[str, str], signed: Sequence[str], at: datetime) -> RawRequest:
    text = "".join(fields[name] for name in signed)
    digest = hmac.new(DEMO_SECRETS["zadarma"]["api_secret"].encode(), text.encode(), hashlib.sha1).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Signature": base64.b64encode(digest.encode()).decode(),
    }
    return _raw("zadarma", "", urlencode(fields).encode(), at, headers)


def _zadarma(action: Action, tz: Any) -> list[RawRequest]:
    d = action.data
    start = d["started"].astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
    number = (d["number"] or "").lstrip("+")
    extension = d["extension"] or "100"
    duration = str(int((action.at - d["started"]).total_seconds()))
    disposition = "answered" if d["answered"] else "no answer"
    if d["direction"] == "out":
        call_id = f"out_demo{d['id']}"
        end = {
            "event": "NOTIFY_OUT_END",
            "call_start": start,
            "pbx_call_id": call_id,
            "caller_id": LINE.lstrip("+"),
            "destination": number,
            "internal": extension,
            "duration": duration,
            "disposition": disposition,
            "status_code": "16",
            "is_recorded": "0",
            "call_id_with_rec": "",
        }
        return [_zadarma_signed(end, ("internal", "destination", "call_start"), action.at)]
    call_id = f"in_demo{d['id']}"
    did = (d["tracking"] or LINE).lstrip("+")
    begin = {
        "event": "NOTIFY_START",
        "call_start": start,
        "pbx_call_id": call_id,
        "caller_id": number,
        "called_did": did,
    }
    end = {
        **begin,
        "event": "NOTIFY_END",
        "internal": extension,
        "duration": duration,
        "disposition": disposition,
        "status_code": "16" if d["answered"] else "19",
        "is_recorded": "0",
        "call_id_with_rec": "",
    }
    signed = ("caller_id", "called_did", "call_start")
    return [_zadarma_signed(begin, signed, d["started"]), _zadarma_signed(end, signed, action.at)]


def _tilda(action: Action, n: int) -> list[RawRequest]:
    d = action.data
    fields = {
        "Name": d["name"],
        "Phone": d["phone"],
        "Email": d["email"],
        "tranid": f"demo:{n}",
        "formid": "form1",
        **d["utm"],
    }
    query = urlencode({"token": DEMO_SECRETS["tilda"]["token"]})
    return [
        _raw(
            "tilda",
            "",
            urlencode(fields).encode(),
            action.at,
            {"Content-Type": "application/x-www-form-urlencoded"},
            query,
        )
    ]


def _postmark(action: Action, n: int) -> list[RawRequest]:
    d = action.data
    body = {
        "FromName": d["name"],
        "From": d["email"],
        "FromFull": {"Email": d["email"], "Name": d["name"]},
        "To": "sales@example.com",
        "OriginalRecipient": "sales@example.com",
        "Subject": "Quote request",
        "MessageID": f"demo-{n}",
        "Date": action.at.strftime("%a, %d %b %Y %H:%M:%S %z"),
        "TextBody": "Hello, please send me a quote. Thanks!",
        "Headers": [],
    }
    creds = base64.b64encode(
        f"{DEMO_SECRETS['postmark']['username']}:{DEMO_SECRETS['postmark']['password']}".encode()
    )
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {creds.decode()}"}
    return [_raw("mail", "", json.dumps(body).encode(), action.at, headers)]


def requests_of(action: Action, n: int, tz: Any) -> list[RawRequest]:
    """The signed requests a provider would send for this action (none for a bot action)."""
    if action.kind == "call":
        return _mango(action) if action.data["provider"] == "mango" else _zadarma(action, tz)
    if action.kind == "form":
        return _tilda(action, n)
    if action.kind == "mail":
        return _postmark(action, n)
    return []


# -- the bot's side: registrations and lead moves ------------------------------------------------


def apply_staff_action(db: Database, action: Action, ctx: EventContext) -> None:
    """What a staff member does in the bot, done with the same storage functions the bot calls.

    ``ctx`` is where a touch entered by hand would go. The story may time a registration before
    the call it follows has ended and reached us: that one is skipped.
    """
    d = action.data
    idents = (phone(d["number"], ctx.region), email(d["email"]) if d.get("email") else None)
    found = next(
        ((i, c) for i in idents if i is not None and (c := find_by_identifier(db, i)) is not None), None
    )
    if found is None:
        return
    known, contact_id = found
    staff_id = staff_named(db, d["staff"])
    try:
        if action.kind == "register":
            draft = Draft(
                d["disposition"],
                temperature=d.get("temperature"),
                reason=d.get("reason"),
                campaign=d.get("campaign"),
            )
            whom = Person((known,), ctx, external_id=f"demo:{d['number']}:{action.at.isoformat()}")
            register(db, whom, draft, at=action.at, staff_id=staff_id)
            return
        leads = leads_of_contact(db, contact_id)
        if leads:
            change_lead(
                db,
                leads[0],
                at=action.at,
                staff_id=staff_id,
                stage=d["stage"],
                reason=d.get("reason"),
                won_amount=d.get("amount"),
            )
    except RegistrationError:
        return  # a move the story made that the rules refuse (a lead already closed): skip it


# -- the writers ---------------------------------------------------------------------------------


async def run_demo(capture: Capture, actions: Sequence[Action], until: datetime) -> dict[str, int]:
    """Replay the story up to ``until`` through the capture service, as live requests would come."""
    config, store = capture.config, capture.store
    counts = {"requests": 0, "rejected": 0, "staff_actions": 0}
    for n, action in enumerate(actions):
        if action.at > until:
            break
        if action.kind in ("register", "move"):
            ctx = capture.context(STAFF_SOURCE, None, action.at)
            await store.write(partial(apply_staff_action, action=action, ctx=ctx))
            counts["staff_actions"] += 1
            continue
        for raw in requests_of(action, n, config.tz):
            source = config.source(raw.source)
            assert source is not None
            outcome = await capture.ingest(raw, source)
            counts["requests"] += 1
            if outcome.status != "processed":
                counts["rejected"] += 1
    return counts


def write_direct(
    capture: Capture, db: Database, actions: Sequence[Action], batch: int = 5000, *, journalled: bool = False
) -> Iterator[int]:
    """The same story through the real parsers and storage functions, in large transactions.

    No single-writer queue, and no journal unless ``journalled`` (then each request is kept raw, as
    a live one is): this is how the benchmark fills a year in minutes. Yields the number of actions
    written after each transaction.
    """
    config = capture.config
    sources: dict[str, SourceConfig] = {s.name: s for s in config.sources}
    done = 0
    while done < len(actions):
        with db.atomic():
            for n in range(done, min(done + batch, len(actions))):
                action = actions[n]
                if action.kind in ("register", "move"):
                    apply_staff_action(db, action, capture.context(STAFF_SOURCE, None, action.at))
                    continue
                for raw in requests_of(action, n, config.tz):
                    source = sources[raw.source]
                    result = parse_request(provider_for(source.provider), raw, source, capture.ours)
                    jid = None
                    if journalled:
                        jid = journal.insert(
                            db,
                            raw,
                            provider=source.provider,
                            status="processed",
                            http_status=result.reply.status,
                            processed_at=raw.received_at,
                            events=len(result.events),
                        )
                    apply_events(db, result.events, capture.context(raw.source, jid, raw.received_at))
        done = min(done + batch, len(actions))
        yield done


def write_demo_config(config: Config) -> Path:
    """The demo's config as TOML beside its database, so every other command can read the demo."""
    path = config.database_path.with_suffix(".toml")
    lines = [
        "# Written by `leadline demo`: its staff, campaigns and sources (with demo secrets).",
        "[leadline]",
        f'database = "{config.database_path.name}"',
        f'timezone = "{config.leadline.timezone}"',
        f'region = "{config.leadline.region}"',
        f'language = "{config.leadline.language}"',
        f'currency = "{config.leadline.currency}"',
        "",
        "[working_time]",
        f"days = {json.dumps(config.working_time.days)}",
        f'hours = "{config.working_time.hours}"',
        f'holidays = "{config.working_time.holidays}"',
    ]
    # The demo's own report and digest counted with these: `leadline report` on it must too.
    for section in ("sla", "digest"):
        values = getattr(config, section).model_dump()
        lines += ["", f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    goals = config.goals.model_dump(exclude_none=True)
    if goals:
        lines += ["", "[goals]", *(f"{k} = {v}" for k, v in goals.items())]
    for person in config.staff:
        lines += ["", "[[staff]]", f'name = "{person.name}"', f"telegram_id = {person.telegram_id}"]
        lines += [f'role = "{person.role}"', f"extensions = {json.dumps(person.extensions)}"]
    for campaign in config.campaigns:
        lines += ["", "[[campaigns]]", f'name = "{campaign.name}"']
        if campaign.title:
            lines.append(f"title = {json.dumps(campaign.title, ensure_ascii=False)}")
        for key in ("tracking_numbers", "utm_campaign", "utm_source", "emails"):
            values = getattr(campaign, key)
            if values:
                lines.append(f"{key} = {json.dumps(values)}")
        for cost in campaign.costs:
            lines += ["", "[[campaigns.costs]]", f'period = "{cost.period}"', f'item = "{cost.item}"']
            lines.append(f"amount = {cost.amount:g}")
    for source in config.sources:
        lines += ["", "[[sources]]", f'name = "{source.name}"', f'provider = "{source.provider}"']
        if source.campaign:
            lines.append(f'campaign = "{source.campaign}"')
        if source.username:
            lines.append(f'username = "{source.username}"')
        for key in ("token", "secret", "vpbx_api_key", "vpbx_api_salt", "api_secret", "password"):
            if source.secret_value(key):
                lines.append(f'{key} = "{source.secret_value(key)}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
