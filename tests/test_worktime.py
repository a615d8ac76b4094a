"""Working-time arithmetic against real calendars.

The Russian dates come from the ``holidays`` package (RU) and match the published production
calendar: 2026-11-04 Unity Day, the 2026 New Year run Jan 1-9 (Jan 9 moved from Saturday Jan 3),
2025-12-31 a day off moved from Sunday Jan 5, and Saturday 2025-11-01 a working day traded for
Monday 2025-11-03. Everything else is a fixed date, so the tests do not depend on today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadline.config import WorkingTimeSection
from storage.worktime import WorkingCalendar

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")


def msk(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=MSK)


@pytest.fixture(scope="module")
def ru() -> WorkingCalendar:
    """The default config: Mon-Fri 09:00-18:00, Moscow, Russian public holidays."""
    return WorkingCalendar.from_config(WorkingTimeSection(), MSK)


def test_from_config_reads_the_section() -> None:
    section = WorkingTimeSection(
        days=["mon", "tue", "wed", "thu", "fri", "sat"],
        hours="10:00-19:00",
        holidays="ru",
        extra_holidays=[date(2026, 12, 30)],
    )
    cal = WorkingCalendar.from_config(section, MSK)
    assert cal.weekdays == frozenset({0, 1, 2, 3, 4, 5})
    assert (cal.start, cal.end) == (time(10), time(19))
    assert cal.holidays_country == "RU"  # lower case in the config is accepted
    assert cal.extra_holidays == frozenset({date(2026, 12, 30)})
    assert cal.tz is MSK


# -- the examples from the brief ------------------------------------------------------------------


def test_friday_evening_plus_15_is_monday_0915(ru: WorkingCalendar) -> None:
    friday = msk(2026, 11, 13, 18, 55)
    assert friday.weekday() == 4
    due = ru.add_working_minutes(friday, 15)
    assert due == msk(2026, 11, 16, 9, 15)
    assert due.tzinfo is MSK


def test_friday_before_close_carries_the_rest_to_monday(ru: WorkingCalendar) -> None:
    assert ru.add_working_minutes(msk(2026, 11, 13, 17, 50), 15) == msk(2026, 11, 16, 9, 5)


def test_deadline_that_uses_up_the_day_is_the_end_of_hours(ru: WorkingCalendar) -> None:
    assert ru.add_working_minutes(msk(2026, 11, 13, 17, 45), 15) == msk(2026, 11, 13, 18, 0)


def test_within_the_day(ru: WorkingCalendar) -> None:
    assert ru.add_working_minutes(msk(2026, 11, 16, 10, 0), 15) == msk(2026, 11, 16, 10, 15)
    assert ru.add_working_minutes(msk(2026, 11, 16, 10, 0), 0.5) == msk(2026, 11, 16, 10, 0, 30)


def test_before_opening_starts_at_opening(ru: WorkingCalendar) -> None:
    assert ru.add_working_minutes(msk(2026, 11, 16, 7, 0), 15) == msk(2026, 11, 16, 9, 15)


def test_zero_minutes_is_the_moment_itself(ru: WorkingCalendar) -> None:
    saturday = msk(2026, 11, 14, 12, 0)
    assert ru.add_working_minutes(saturday, 0) == saturday


def test_a_whole_working_week(ru: WorkingCalendar) -> None:
    # 5 days x 540 minutes from Monday opening ends at Friday closing.
    assert ru.add_working_minutes(msk(2026, 11, 16, 9, 0), 5 * 540) == msk(2026, 11, 20, 18, 0)


# -- days off ------------------------------------------------------------------------------------


def test_unity_day_is_skipped(ru: WorkingCalendar) -> None:
    assert not ru.is_working_day(date(2026, 11, 4))
    assert ru.is_working_day(date(2026, 11, 3))
    assert ru.is_working_day(date(2026, 11, 5))
    # Tuesday 17:55 + 15: five minutes on Tuesday, Wednesday is the holiday, ten on Thursday.
    assert ru.add_working_minutes(msk(2026, 11, 3, 17, 55), 15) == msk(2026, 11, 5, 9, 10)
    assert ru.working_minutes_between(msk(2026, 11, 3, 17, 0), msk(2026, 11, 5, 10, 0)) == 120


def test_holiday_falling_on_weekend_is_moved_to_monday(ru: WorkingCalendar) -> None:
    # International Women's Day 2026 is a Sunday; Monday March 9 is the day off instead.
    assert not ru.is_working_day(date(2026, 3, 9))
    assert ru.add_working_minutes(msk(2026, 3, 6, 18, 55), 15) == msk(2026, 3, 10, 9, 15)


def test_new_year_run_is_skipped(ru: WorkingCalendar) -> None:
    # Tuesday Dec 30 is the last working day of 2025; Dec 31 and Jan 1-9 are off, Jan 10-11 the
    # weekend, so work resumes on Monday Jan 12.
    assert ru.is_working_day(date(2025, 12, 30))
    assert [d for d in range(1, 13) if ru.is_working_day(date(2026, 1, d))] == [12]
    assert not ru.is_working_day(date(2025, 12, 31))
    assert ru.add_working_minutes(msk(2025, 12, 30, 17, 30), 60) == msk(2026, 1, 12, 9, 30)
    assert ru.working_minutes_between(msk(2025, 12, 30, 18, 0), msk(2026, 1, 12, 9, 0)) == 0
    assert ru.next_working_moment(msk(2025, 12, 31, 12, 0)) == msk(2026, 1, 12, 9, 0)


def test_weekend_between(ru: WorkingCalendar) -> None:
    friday_17, monday_10 = msk(2026, 11, 13, 17, 0), msk(2026, 11, 16, 10, 0)
    assert ru.working_minutes_between(friday_17, monday_10) == 120
    assert not ru.is_working_day(date(2026, 11, 14))
    assert not ru.is_working_day(date(2026, 11, 15))
    assert not ru.is_working_time(msk(2026, 11, 14, 12, 0))


def test_transferred_working_saturday_counts(ru: WorkingCalendar) -> None:
    # Saturday 2025-11-01 was worked in exchange for Monday 2025-11-03 off.
    assert ru.is_working_day(date(2025, 11, 1))
    assert not ru.is_working_day(date(2025, 11, 3))
    assert not ru.is_working_day(date(2025, 11, 4))
    assert ru.add_working_minutes(msk(2025, 10, 31, 17, 55), 15) == msk(2025, 11, 1, 9, 10)
    assert ru.add_working_minutes(msk(2025, 11, 1, 17, 55), 15) == msk(2025, 11, 5, 9, 10)


def test_working_days_in_a_year_match_the_production_calendar(ru: WorkingCalendar) -> None:
    # The official Russian figures for a five-day week: 248 (2024), 247 (2025), 247 (2026).
    for year, days in ((2024, 248), (2025, 247), (2026, 247)):
        minutes = ru.working_minutes_between(msk(year, 1, 1), msk(year + 1, 1, 1))
        assert minutes == days * 540, year


def test_extra_holiday_is_skipped() -> None:
    section = WorkingTimeSection(extra_holidays=[date(2026, 11, 5)])
    cal = WorkingCalendar.from_config(section, MSK)
    assert not cal.is_working_day(date(2026, 11, 5))
    # Wednesday is Unity Day, Thursday the company's own day off.
    assert cal.add_working_minutes(msk(2026, 11, 3, 17, 55), 15) == msk(2026, 11, 6, 9, 10)


def test_extra_holiday_overrides_a_transferred_working_saturday() -> None:
    cal = WorkingCalendar.from_config(WorkingTimeSection(extra_holidays=[date(2025, 11, 1)]), MSK)
    assert not cal.is_working_day(date(2025, 11, 1))


def test_no_public_holidays() -> None:
    cal = WorkingCalendar.from_config(WorkingTimeSection(holidays=""), MSK)
    assert cal.is_working_day(date(2026, 11, 4))
    assert cal.is_working_day(date(2026, 1, 5))
    assert not cal.is_working_day(date(2025, 11, 1))  # no decree, so an ordinary Saturday
    assert cal.add_working_minutes(msk(2026, 11, 3, 17, 55), 15) == msk(2026, 11, 4, 9, 10)


def test_custom_schedule_mon_to_sat_10_to_19() -> None:
    section = WorkingTimeSection(days=["mon", "tue", "wed", "thu", "fri", "sat"], hours="10:00-19:00")
    cal = WorkingCalendar.from_config(section, MSK)
    assert cal.is_working_time(msk(2026, 11, 14, 10, 0))  # Saturday
    assert not cal.is_working_time(msk(2026, 11, 14, 9, 59))
    assert not cal.is_working_time(msk(2026, 11, 16, 19, 0))
    # Friday 18:55 -> Saturday 10:10; Saturday 18:55 -> Monday 10:10 (Sunday off).
    assert cal.add_working_minutes(msk(2026, 11, 13, 18, 55), 15) == msk(2026, 11, 14, 10, 10)
    assert cal.add_working_minutes(msk(2026, 11, 14, 18, 55), 15) == msk(2026, 11, 16, 10, 10)
    # Monday 2026-11-02 18:00 to Thursday 11:00: 60 + (Tuesday 540) + (Wednesday holiday) + 60.
    assert cal.working_minutes_between(msk(2026, 11, 2, 18, 0), msk(2026, 11, 5, 11, 0)) == 660


# -- moments and time zones ----------------------------------------------------------------------


def test_is_working_time_boundaries(ru: WorkingCalendar) -> None:
    assert not ru.is_working_time(msk(2026, 11, 16, 8, 59, 59))
    assert ru.is_working_time(msk(2026, 11, 16, 9, 0))
    assert ru.is_working_time(msk(2026, 11, 16, 17, 59, 59))
    assert not ru.is_working_time(msk(2026, 11, 16, 18, 0))


def test_input_in_another_zone_is_converted(ru: WorkingCalendar) -> None:
    # Moscow is UTC+3: 06:30 UTC is 09:30 in the office, 05:59 UTC is 08:59.
    assert ru.is_working_time(datetime(2026, 11, 16, 6, 30, tzinfo=UTC))
    assert not ru.is_working_time(datetime(2026, 11, 16, 5, 59, tzinfo=UTC))
    # Friday 15:55 UTC is 18:55 in Moscow.
    due = ru.add_working_minutes(datetime(2026, 11, 13, 15, 55, tzinfo=UTC), 15)
    assert due == msk(2026, 11, 16, 9, 15)
    assert due.tzinfo is MSK


def test_next_working_moment(ru: WorkingCalendar) -> None:
    inside = msk(2026, 11, 16, 11, 22, 33)
    assert ru.next_working_moment(inside) == inside
    assert ru.next_working_moment(msk(2026, 11, 13, 18, 0)) == msk(2026, 11, 16, 9, 0)
    assert ru.next_working_moment(msk(2026, 11, 16, 3, 0)) == msk(2026, 11, 16, 9, 0)
    nxt = ru.next_working_moment(datetime(2026, 11, 14, 12, 0, tzinfo=UTC))
    assert nxt == msk(2026, 11, 16, 9, 0)
    assert nxt.tzinfo is MSK


def test_working_minutes_between_empty_and_reversed(ru: WorkingCalendar) -> None:
    a = msk(2026, 11, 16, 10, 0)
    assert ru.working_minutes_between(a, a) == 0
    assert ru.working_minutes_between(a, a - timedelta(hours=1)) == 0
    assert ru.working_minutes_between(a, a + timedelta(seconds=90)) == 1.5


def test_dst_outside_hours_keeps_wall_clock_hours() -> None:
    # Berlin moves to summer time on Sunday 2026-03-29 and back on Sunday 2026-10-25.
    cal = WorkingCalendar.from_config(WorkingTimeSection(holidays="DE"), BERLIN)
    friday = datetime(2026, 3, 27, 17, 50, tzinfo=BERLIN)
    due = cal.add_working_minutes(friday, 15)
    assert due == datetime(2026, 3, 30, 9, 5, tzinfo=BERLIN)
    assert due.utcoffset() == timedelta(hours=2)
    assert friday.utcoffset() == timedelta(hours=1)
    assert cal.working_minutes_between(friday, datetime(2026, 3, 30, 10, 0, tzinfo=BERLIN)) == 70
    # 09:00 summer time is 07:00 UTC; 09:00 winter time is 08:00 UTC.
    assert cal.is_working_time(datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert not cal.is_working_time(datetime(2026, 3, 27, 7, 30, tzinfo=UTC))
    # Good Friday (2026-04-03) and Easter Monday (2026-04-06) are German public holidays.
    assert cal.add_working_minutes(datetime(2026, 4, 2, 17, 55, tzinfo=BERLIN), 15) == datetime(
        2026, 4, 7, 9, 10, tzinfo=BERLIN
    )


def test_dst_inside_hours_counts_real_minutes() -> None:
    # Round-the-clock shift, every day: the change happens inside working hours.
    section = WorkingTimeSection(
        days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], hours="00:00-23:59", holidays=""
    )
    cal = WorkingCalendar.from_config(section, BERLIN)
    # Spring forward: 02:00 becomes 03:00, so the day's period is an hour shorter.
    spring = date(2026, 3, 29)
    day_start = datetime.combine(spring, time(0, 0), tzinfo=BERLIN)
    day_end = datetime.combine(spring, time(23, 59), tzinfo=BERLIN)
    assert cal.working_minutes_between(day_start, day_end) == 24 * 60 - 1 - 60
    # An hour of waiting from 01:30 winter time ends at 03:30 summer time (00:30 -> 01:30 UTC).
    due = cal.add_working_minutes(datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN), 60)
    assert due.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert (due.hour, due.minute, due.utcoffset()) == (3, 30, timedelta(hours=2))
    # Fall back: 03:00 becomes 02:00 again, so the period is an hour longer.
    autumn = date(2026, 10, 25)
    day_start = datetime.combine(autumn, time(0, 0), tzinfo=BERLIN)
    day_end = datetime.combine(autumn, time(23, 59), tzinfo=BERLIN)
    assert cal.working_minutes_between(day_start, day_end) == 24 * 60 - 1 + 60
    # From 02:30 summer time, an hour later is 02:30 winter time (the repeated hour).
    due = cal.add_working_minutes(datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=BERLIN), 60)
    # Same-zone datetime comparison ignores fold, so compare the instants in UTC.
    assert due.astimezone(UTC) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert due.utcoffset() == timedelta(hours=1)
    # The minute 23:59-00:00 is outside working time every day.
    assert not cal.is_working_time(datetime(2026, 10, 25, 23, 59, 30, tzinfo=BERLIN))
    assert cal.add_working_minutes(datetime(2026, 10, 25, 23, 58, tzinfo=BERLIN), 2) == datetime(
        2026, 10, 26, 0, 1, tzinfo=BERLIN
    )


# -- the inverse property ------------------------------------------------------------------------


def _sample_starts() -> list[datetime]:
    """Deterministic instants spread over 2025-2026: odd minute steps hit every hour and weekday."""
    base = msk(2025, 10, 27, 0, 0)
    return [base + timedelta(minutes=7919 * i) for i in range(48)]


MINUTES = (0.5, 1, 15, 30, 59.25, 540, 541, 1234, 5000, 20000)


def test_inverse_property_from_working_time(ru: WorkingCalendar) -> None:
    starts = [ru.next_working_moment(a) + timedelta(minutes=17) for a in _sample_starts()]
    starts = [a for a in starts if ru.is_working_time(a)]
    assert len(starts) >= 30
    for a in starts:
        for m in MINUTES:
            b = ru.add_working_minutes(a, m)
            assert b > a
            assert ru.working_minutes_between(a, b) == m, (a, m)


def test_inverse_property_from_any_moment(ru: WorkingCalendar) -> None:
    for a in _sample_starts():
        for m in MINUTES:
            assert ru.working_minutes_between(a, ru.add_working_minutes(a, m)) == m, (a, m)


def test_adding_the_measured_wait_lands_on_the_end(ru: WorkingCalendar) -> None:
    starts = _sample_starts()
    for a, b in zip(starts, starts[3:], strict=False):
        end = ru.next_working_moment(b) + timedelta(minutes=1)  # strictly inside a period
        assert ru.add_working_minutes(a, ru.working_minutes_between(a, end)) == end


def test_inverse_property_across_dst_in_berlin() -> None:
    section = WorkingTimeSection(days=["mon", "tue", "wed", "thu", "fri", "sat"], holidays="DE")
    cal = WorkingCalendar.from_config(section, BERLIN)
    base = datetime(2026, 3, 20, 8, 0, tzinfo=BERLIN)
    for i in range(24):
        a = base + timedelta(hours=11 * i)
        for m in (15, 600, 3000):
            assert cal.working_minutes_between(a, cal.add_working_minutes(a, m)) == m


def test_latest_start_due_by_is_the_last_moment_whose_deadline_has_come(ru: WorkingCalendar) -> None:
    """A report counts a missed call as late once its deadline has passed: every call missed up to
    this moment is due by the report time, and none after it (to the microsecond)."""
    micro = timedelta(microseconds=1)
    # Monday 08:00: a 30-minute SLA's deadline came for the calls up to Friday 17:30.
    assert ru.latest_start_due_by(msk(2026, 11, 16, 8, 0), 30) == msk(2026, 11, 13, 17, 30)
    assert ru.latest_start_due_by(msk(2026, 11, 16, 9, 30), 30) == msk(2026, 11, 16, 9, 0)
    assert ru.latest_start_due_by(msk(2026, 11, 5, 9, 10), 30) == msk(2026, 11, 3, 17, 40)  # Unity Day
    assert ru.latest_start_due_by(msk(2026, 11, 16, 9, 30), 0) == msk(2026, 11, 16, 9, 30)
    berlin = WorkingCalendar.from_config(
        WorkingTimeSection(days=["mon", "tue", "wed", "thu", "fri", "sat"], holidays="DE"), BERLIN
    )
    dst = [datetime(2026, 3, 20, 8, 0, tzinfo=BERLIN) + timedelta(hours=11 * i) for i in range(24)]
    for cal, moments in ((ru, _sample_starts()), (berlin, dst)):
        for at in moments:
            for m in MINUTES:
                latest = cal.latest_start_due_by(at, m)
                assert cal.add_working_minutes(latest, m) <= at, (at, m)
                assert cal.add_working_minutes(latest + micro, m) > at, (at, m)


# -- errors --------------------------------------------------------------------------------------


def test_unknown_holidays_country_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown holidays country 'XX'"):
        WorkingCalendar.from_config(WorkingTimeSection(holidays="XX"), MSK)
    with pytest.raises(ValueError, match="unknown holidays country 'DE-XX'"):
        WorkingCalendar.from_config(WorkingTimeSection(holidays="DE-XX"), BERLIN)


def test_subdivision_holidays() -> None:
    # Epiphany (Jan 6) is a holiday in Bavaria but not in Berlin.
    bavaria = WorkingCalendar.from_config(WorkingTimeSection(holidays="DE-BY"), BERLIN)
    berlin = WorkingCalendar.from_config(WorkingTimeSection(holidays="DE-BE"), BERLIN)
    assert not bavaria.is_working_day(date(2026, 1, 6))
    assert berlin.is_working_day(date(2026, 1, 6))


def test_no_working_days_is_rejected() -> None:
    with pytest.raises(ValueError, match="no working time"):
        WorkingCalendar.from_config(WorkingTimeSection(days=[]), MSK)


def test_bad_arguments(ru: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ru.add_working_minutes(datetime(2026, 11, 16, 10, 0), 15)
    with pytest.raises(ValueError, match="timezone-aware"):
        ru.is_working_time(datetime(2026, 11, 16, 10, 0))
    with pytest.raises(ValueError, match=">= 0"):
        ru.add_working_minutes(msk(2026, 11, 16, 10, 0), -1)
    with pytest.raises(ValueError, match=">= 0"):
        ru.add_working_minutes(msk(2026, 11, 16, 10, 0), float("nan"))


def test_calendar_is_hashable_and_comparable() -> None:
    a = WorkingCalendar.from_config(WorkingTimeSection(), MSK)
    b = WorkingCalendar.from_config(WorkingTimeSection(), MSK)
    assert a == b
    assert hash(a) == hash(b)


def test_round_the_clock_is_every_real_minute_across_midnight_and_a_dst_change() -> None:
    from storage.reports.clocks import WorkingClock

    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    section = WorkingTimeSection(days=every_day, hours="00:00-24:00", holidays="")
    cal = WorkingCalendar.from_config(section, BERLIN)
    night = (datetime(2026, 11, 23, 23, 30, tzinfo=BERLIN), datetime(2026, 11, 24, 0, 30, tzinfo=BERLIN))
    assert cal.working_minutes_between(*night) == 60
    assert cal.add_working_minutes(night[0], 45) == datetime(2026, 11, 24, 0, 15, tzinfo=BERLIN)
    assert cal.is_working_time(datetime(2026, 11, 24, 3, 0, tzinfo=BERLIN))
    # Berlin's clocks go back on 2026-10-25: that day has 25 hours, all of them working time.
    autumn = (datetime(2026, 10, 25, tzinfo=BERLIN), datetime(2026, 10, 26, tzinfo=BERLIN))
    assert cal.working_minutes_between(*autumn) == 25 * 60
    clock = WorkingClock(cal, date(2026, 10, 20), date(2026, 11, 30))
    for start, end in (night, autumn):
        assert clock.between(start, end) == cal.working_minutes_between(start, end)
