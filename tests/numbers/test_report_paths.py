"""The shortcuts a year's report takes give the figures the plain rules give.

A report reads stored times as text where it can (the working clock, the call-back SLA in real
minutes) and reads on a second connection when it can; these tests hold each shortcut to the rule
it stands for, on its edges.
"""

from __future__ import annotations

import asyncio
import gc
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadline import report_cli
from leadline.callback_marks import marks_rule
from leadline.report_cli import collector_held
from storage.calls import MARKS_RULE_KEY
from storage.db import iso, open_database
from storage.reports.clocks import WorkingClock
from storage.reports.report import build_report
from storage.reports.scope import Period, Rules, Scope
from storage.worktime import WorkingCalendar
from tests.conftest import StartServer
from tests.numbers.month import AS_OF, MSK, NOVEMBER, Month, month_config, msk, open_month, transaction


@pytest.mark.parametrize(
    ("zone", "country"),
    [
        ("Europe/Berlin", "DE"),  # DST changes at 02:00/03:00
        ("Asia/Beirut", ""),  # clocks go back at midnight: a local day repeats an hour
        ("America/Havana", ""),  # clocks go forward at midnight: a local day starts at 01:00
    ],
)
def test_the_working_clock_reads_stored_times_as_it_reads_datetimes(zone: str, country: str) -> None:
    tz = ZoneInfo(zone)
    calendar = WorkingCalendar(tz, frozenset(range(6)), time(0, 30), time(23, 30), holidays_country=country)
    clock = WorkingClock(calendar, date(2021, 12, 20), date(2023, 1, 10))
    rnd = random.Random(7)
    base = datetime(2021, 12, 15, tzinfo=UTC)
    moments = [base + timedelta(microseconds=rnd.randrange(0, 400 * 86_400 * 10**6)) for _ in range(5000)]
    # Every day's first instant and the edges of its working period, to the microsecond.
    for day in range(clock.days):
        for stored in (clock.day_starts[day], *(clock.periods[day] or ())):
            edge = datetime.fromisoformat(stored)
            moments += [edge - timedelta(microseconds=1), edge, edge + timedelta(microseconds=1)]
    for moment in moments:
        assert clock.minutes_at_stored(iso(moment)) == clock.minutes_at(moment), moment
    # A time stored some other way is read as a datetime.
    odd = "2022-06-01 10:00:00+02:00"
    assert clock.minutes_at_stored(odd) == clock.minutes_at(datetime.fromisoformat(odd))


def test_call_backs_on_the_edge_of_the_sla(tmp_path: Path) -> None:
    config = month_config(tmp_path)
    m = Month(open_database(config.database_path), config)
    micro = timedelta(microseconds=1)
    # Call-backs marked under an earlier, longer SLA are judged again against today's 30 minutes.
    # Mon 2 Nov, in working hours: due 30 real minutes later, to the microsecond. Fri 6 Nov 17:50:
    # 10 working minutes on Friday and 20 on Monday, due Mon 9 Nov 09:20.
    marks = {
        m.call("+79160000101", msk(2, 10), answered=False): msk(2, 10, 30),  # in time
        m.call("+79160000102", msk(2, 11), answered=False): msk(2, 11, 30) + micro,  # late
        m.call("+79160000103", msk(6, 17, 50), answered=False): msk(9, 9, 20),  # in time
        m.call("+79160000104", msk(6, 17, 50), answered=False): msk(9, 9, 20) + micro,  # late
    }
    with transaction(m.db):
        for touch_id, back_at in marks.items():
            m.db.execute("UPDATE touches SET called_back_at = ? WHERE id = ?", [iso(back_at), touch_id])

    scope = Scope(Period.month(NOVEMBER, MSK), as_of=AS_OF)
    report = build_report(m.db, scope, m.rules)
    assert (report["missed_calls"], report["missed_not_called_back"]) == (4, 2)
    assert report["by_channel"]["call"]["missed_not_called_back"] == 2


def test_a_report_read_inside_a_transaction_is_the_same(tmp_path: Path) -> None:
    config = month_config(tmp_path, goals={"leads": 10})
    month = open_month(config.database_path, config)
    scope = Scope(Period.month(NOVEMBER, MSK), as_of=AS_OF)
    beside = build_report(month.db, scope, month.rules)  # a second connection helps
    with transaction(month.db):  # a second connection would not see this one's changes: no help
        alone = build_report(month.db, scope, month.rules)
    assert beside == alone
    assert beside["inbound_contacts"] == 8 and beside["missed_not_called_back"] == 2


async def test_a_changed_call_back_sla_judges_past_calls_again_at_the_next_start(
    tmp_path: Path, start_server: StartServer
) -> None:
    """Capture marks a call-back against the SLA of its day, and the reports read the mark: once
    `leadline serve` starts with another SLA, the past follows it, both ways."""
    config = month_config(tmp_path)  # [sla] callback_minutes = 30 while the calls come
    m = Month(open_database(config.database_path), config)
    m.call("+79160000101", msk(2, 10), answered=False)
    m.call("+79160000101", msk(2, 11), answered=True, extension="101", direction="out")  # 60 min
    m.call("+79160000102", msk(2, 12), answered=False)
    m.call("+79160000102", msk(2, 12, 20), answered=True, extension="101", direction="out")  # 20 min
    m.db.close()
    scope = Scope(Period.month(NOVEMBER, MSK), as_of=AS_OF)

    async def not_called_back(minutes: int) -> int:
        config = month_config(tmp_path, sla={"callback_minutes": minutes})
        srv = await start_server(config)
        for _ in range(200):  # judged beside capture: done once the rule is stored
            if srv.scalar("SELECT value FROM meta WHERE key = ?", [MARKS_RULE_KEY]) == marks_rule(config):
                break
            await asyncio.sleep(0.05)
        db = srv.db()
        try:
            figure = int(build_report(db, scope, Rules.from_config(config))["missed_not_called_back"])
        finally:
            db.close()
        await srv.stop()
        return figure

    assert await not_called_back(30) == 1  # the 60-minute call-back is late
    assert await not_called_back(120) == 0  # raised: it now counts
    assert await not_called_back(15) == 2  # lowered: the 20-minute one is late too
    assert await not_called_back(30) == 1


def test_a_report_leaves_the_garbage_collector_alone_and_nothing_in_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report never turns Python's cyclic collector off: the collector is the process's, and in
    ``leadline serve`` reports build in reader threads beside the webhooks. It leaves nothing in a
    cycle for the collector to find afterwards (the responder drops its loader)."""
    config = month_config(tmp_path)
    month = open_month(config.database_path, config)
    scope = Scope(Period.month(NOVEMBER, MSK), as_of=AS_OF)
    assert gc.isenabled()
    gc.collect()

    def refused() -> None:
        raise AssertionError("a report turned the process's cyclic collector off")

    monkeypatch.setattr(gc, "disable", refused)
    build_report(month.db, scope, month.rules)
    assert gc.isenabled()
    assert gc.collect() == 0


def test_leadline_report_holds_the_collector_off_while_it_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``leadline report``, a process that does nothing else meanwhile, builds with the collector
    off, and gives it back as it found it."""
    config = month_config(tmp_path)
    open_month(config.database_path, config).db.close()
    enabled: list[bool] = []

    def build(*args: Any) -> dict[str, Any]:
        enabled.append(gc.isenabled())
        return build_report(*args)

    monkeypatch.setattr(report_cli, "build_report", build)
    args = [
        "--config",
        str(tmp_path / "config.toml"),
        "--period",
        "2026-11",
        "--json",
        "--as-of",
        AS_OF.isoformat(),
    ]
    report_cli.report.main(args, standalone_mode=False)
    assert enabled == [False]
    assert gc.isenabled()


def test_the_hold_gives_the_collector_back_as_it_found_it() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_held():
        with collector_held():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner hold leaves it to the outer one
        raise RuntimeError("a report that fails")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_held():
            pass
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()
