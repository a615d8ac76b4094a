"""Past missed calls judged again when the call-back deadline's rule changes, at the primary's start.

Capture marks a missed call's call-back (``touches.called_back_at``) against the deadline of its
day: ``[sla] callback_minutes`` of working time. The reports, the export and the nudges read the
mark, so a year's report needs no search for each call's first answer. When the rule changes, the
marks of the past follow it here: a raised SLA counts the call-backs it now covers, a lowered one
drops those that came late. The rule they were judged by is kept in ``meta``; a start with the same
config finds it unchanged and does nothing. The work runs beside capture, a page of contacts per
writer job, and the new rule is stored only once every page is done, so a stop midway is finished
by the next start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

from leadline.config import Config
from storage import meta
from storage.calls import MARKS_RULE_KEY, missed_call_contacts, remark_callbacks
from storage.db import Clock, Store

log = logging.getLogger("leadline.callback_marks")

#: Contacts judged again per writer job: about 20 ms of the writer on a year of a busy office
#: (bench/report.py's base: 105,000 contacts with missed calls judged in 23 s, beside capture).
PAGE = 100


def marks_rule(config: Config) -> str:
    """What a call-back deadline depends on, as text to compare: the minutes and the working time."""
    return json.dumps(
        {
            "callback_minutes": config.sla.callback_minutes,
            "timezone": config.leadline.timezone,
            "working_time": config.working_time.model_dump(mode="json"),
        },
        sort_keys=True,
    )


async def remark_if_changed(
    config: Config, store: Store, clock: Clock, deadline: Callable[[datetime], datetime]
) -> int:
    """Judge the past missed calls again when the rule changed; returns how many contacts were."""
    rule = marks_rule(config)
    if await store.read(partial(meta.get, key=MARKS_RULE_KEY)) == rule:
        return 0
    contacts, after = 0, 0
    while page := await store.read(partial(missed_call_contacts, after=after, limit=PAGE)):
        await store.write(partial(remark_callbacks, contact_ids=page, deadline=deadline, at=clock()))
        contacts, after = contacts + len(page), page[-1]
    await store.write(partial(meta.put, key=MARKS_RULE_KEY, value=rule))
    if contacts:
        log.info("call-backs judged again by the current SLA", extra={"fields": {"contacts": contacts}})
    return contacts


async def remark_in_background(
    config: Config, store: Store, clock: Clock, deadline: Callable[[datetime], datetime]
) -> None:
    """:func:`remark_if_changed` as the primary runs it beside capture: a failure is logged, and the
    next start tries again (the rule is stored only once every page is judged)."""
    try:
        await remark_if_changed(config, store, clock, deadline)
    except Exception:
        log.exception("judging past call-backs by the current SLA failed; the next start tries again")
