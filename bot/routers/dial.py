"""``📞 Call back``: the PBX rings the person who pressed, then the client, through the office line.

A call-back from a personal mobile is invisible to telephony, so the missed call would never count
as called back; through the PBX it comes back as an outbound call on the source's webhooks and
closes the missed call like any answered call to the number. The press only asks; it marks nothing.

One call-back per contact at a time: a second press while the first is under way (a double tap, a
colleague on another card) is told who started it and when, and dials nothing (storage/dials.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

import phonenumbers
from aiogram import Router
from aiogram.types import CallbackQuery

from bot.callbacks import DialCB
from bot.cards import pretty_phone
from bot.catalogues import gettext as _
from bot.dialer import Dialer, DialOutcome
from bot.nudge_texts import NAME_LIMIT
from bot.replies import clip
from leadline.config import Config
from storage.calls import dial_target
from storage.db import Clock, Store
from storage.dials import DialUnderWay, claim_dial, give_back_dial
from storage.staff import StaffMember

log = logging.getLogger("leadline.bot")

#: How long a press holds the contact when no outbound call comes back: the PBX rings the staff
#: member for about half a minute, then the client for as long again, and the call then shows up
#: on the webhooks; past this a press is taken to be a new attempt.
CALLING_WINDOW = timedelta(minutes=2)

#: How much of the PBX's reason and of a source's name an alert (200 characters at most) shows.
REASON_LIMIT = 150
SOURCE_LIMIT = 60


def staff_lines(config: Config, staff: StaffMember) -> tuple[str | None, str | None]:
    """The person's first extension and own number, as the config gives them (the bot's approvals have neither)."""
    person = next((s for s in config.staff if s.telegram_id == staff.telegram_id), None)
    if person is None:
        return None, None
    extensions = [e.strip() for e in person.extensions if e.strip()]
    return (extensions[0] if extensions else None), person.phone


def hidden_middle(number: str) -> str:
    """``+79161234567`` as ``+7 916 ***-**-67``: the country, the area and the last two digits."""
    pretty = pretty_phone(number)
    try:
        code = phonenumbers.parse(number, None).country_code
    except phonenumbers.NumberParseException:
        return pretty
    head, _sep, rest = pretty.partition(" ")
    area, _sep, local = rest.partition(" ")
    if not local or head != f"+{code}":
        return pretty
    digits = sum(c.isdigit() for c in local)
    seen = 0
    masked = []
    for c in local:
        if c.isdigit():
            seen += 1
            masked.append(c if seen > digits - 2 else "*")
        else:
            masked.append(c)
    return f"{head} {area} {''.join(masked)}"


async def on_dial(
    callback: CallbackQuery,
    callback_data: DialCB,
    staff: StaffMember,
    store: Store,
    config: Config,
    dialer: Dialer,
    clock: Clock,
) -> None:
    target_of = partial(
        dial_target,
        region=config.leadline.region,
        source_regions={s.name: s.region for s in config.sources if s.region},
    )
    target = await store.read(partial(target_of, touch_id=callback_data.t))
    if target is None or target.phone is None:
        await callback.answer(_("This contact has no phone number to call back."), show_alert=True)
        return
    if not dialer.can_dial(target.source):
        await callback.answer(
            _(
                "Calls of {source} cannot be called back from here: the source has no API keys in the config."
            ).format(source=clip(target.source, SOURCE_LIMIT)),
            show_alert=True,
        )
        return
    ring = dialer.rings(target.source, *staff_lines(config, staff))
    if ring is None:
        await callback.answer(
            _(
                "The PBX has nothing to ring you on: ask the owner to give you an extension or a phone in the config."
            ),
            show_alert=True,
        )
        return
    now = clock()
    under_way = await store.write(
        partial(
            claim_dial,
            contact_id=target.contact_id,
            touch_id=target.touch_id,
            staff_id=staff.id,
            at=now,
            until=now + CALLING_WINDOW,
        )
    )
    if under_way is not None:
        log.info(
            "call-back already under way",
            extra={"fields": {"touch": target.touch_id, "contact": target.contact_id}},
        )
        # The call under way may be about another of the person's calls, from another number.
        calling = await store.read(partial(target_of, touch_id=under_way.touch_id))
        client = calling.phone if calling is not None and calling.phone is not None else target.phone
        await callback.answer(already_calling(under_way, client, config), show_alert=True)
        return
    outcome: DialOutcome | None = None
    try:
        outcome = await dialer.dial(target.source, ring, target.phone, target.line)
    finally:
        # The claim stays while the PBX may ring (taken, or sent and unconfirmed): a press then would ring twice.
        if outcome is None or outcome.status == "refused":
            await store.write(
                partial(give_back_dial, contact_id=target.contact_id, staff_id=staff.id, at=now)
            )
    if outcome.status == "refused":
        await callback.answer(
            # An alert holds at most 200 characters, and the PBX's words come after ours.
            _("The PBX did not call: {reason}").format(reason=clip(outcome.reason, REASON_LIMIT)),
            show_alert=True,
        )
        return
    shown = hidden_middle(ring) if ring.startswith("+") else ring
    if outcome.status == "unconfirmed":
        await callback.answer(
            _(
                "📞 The PBX did not confirm the call-back: it may still ring you on {staff}, then {client}."
                " If nothing rings, press again after {time}."
            ).format(
                staff=shown,
                client=hidden_middle(target.phone),
                time=f"{press_again_at(now, config):%H:%M}",
            ),
            show_alert=True,
        )
        return
    await callback.answer(
        _("📞 Calling you on {staff}, then {client}.").format(staff=shown, client=hidden_middle(target.phone))
    )


def press_again_at(pressed: datetime, config: Config) -> datetime:
    """When the press's claim has lapsed, as the office's clock shows it: the calling window's end,
    rounded up to the minute, so a press at the minute shown dials."""
    end = (pressed + CALLING_WINDOW).astimezone(config.tz)
    whole = end.replace(second=0, microsecond=0)
    return whole if whole == end else whole + timedelta(minutes=1)


def already_calling(under_way: DialUnderWay, client: str, config: Config) -> str:
    """The second press's answer: the first one is ringing, by whom and since when (local time)."""
    started = under_way.started_at.astimezone(config.tz)
    return _("📞 Already calling {client} (started {time} by {name}).").format(
        client=hidden_middle(client), time=f"{started:%H:%M}", name=clip(under_way.staff_name, NAME_LIMIT)
    )


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="dial")
    router.callback_query.register(on_dial, DialCB.filter())
    return router
