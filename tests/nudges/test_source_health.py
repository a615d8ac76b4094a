"""Source health: a source that goes quiet or starts failing is an alert to the owner, once, and once more on recovery."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadline.config import WorkingTimeSection
from storage.db import iso, open_database
from storage.schema import migrate
from storage.source_health import HealthRules, assess, usual_gap
from storage.worktime import WorkingCalendar
from tests.conftest import BASE, StartServer
from tests.nudges.conftest import ANNA, BORIS, MSK, TUESDAY, Clock, Office, msk, office_config


def alerts(office: Office, chat_id: int = ANNA) -> list[str]:
    rows = office.srv.rows(
        "SELECT payload FROM outbox WHERE chat_id = ? AND dedupe_key LIKE 'source-health:%' ORDER BY id",
        [chat_id],
    )
    return [str(json.loads(r["payload"])["text"]) for r in rows]


async def post(office: Office, at: datetime, token: str = "site-token", **fields: str) -> Any:
    office.clock.now = at
    return await office.srv.session.post(
        f"{office.srv.url}/hooks/site?token={token}", data=fields or {"phone": "+79160000001"}
    )


async def test_a_source_failing_its_token_alerts_the_owner_once_and_again_on_recovery(office: Office) -> None:
    assert (await post(office, msk(TUESDAY, 10, 0))).status == 200
    for minute in (1, 2):
        assert (await post(office, msk(TUESDAY, 10, minute), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 10, 3))
    assert alerts(office) == []  # two refusals in a row: not yet the threshold of three

    assert (await post(office, msk(TUESDAY, 10, 4), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 10, 5))
    [alert] = alerts(office)
    assert "site" in alert and "3" in alert and "bad-secret-123" not in alert
    assert alerts(office, BORIS) == []  # the owner hears about it, not the staff

    assert (await post(office, msk(TUESDAY, 10, 6), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 10, 7))
    await office.sweep(msk(TUESDAY, 11, 0))
    assert len(alerts(office)) == 1

    assert (await post(office, msk(TUESDAY, 11, 5))).status == 200
    await office.sweep(msk(TUESDAY, 11, 6))
    await office.sweep(msk(TUESDAY, 11, 7))
    texts = alerts(office)
    assert len(texts) == 2 and "снова работает" in texts[1]
    [row] = office.nudges("source_health")
    assert (row["outcome"], row["ref"]) == ("recovered", "failing")


async def test_a_failing_episode_renamed_under_it_is_not_alerted_again(office: Office) -> None:
    """The upgrade to m022: an episode alerted by the old code is named by its first refusal, which
    the migration then marks anonymous; the next sweep found the episode "new" and alerted again."""
    assert (await post(office, msk(TUESDAY, 10, 0))).status == 200
    for minute in (1, 2, 3, 4):
        assert (await post(office, msk(TUESDAY, 10, minute), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 10, 5))
    [alert] = alerts(office)
    [episode] = office.nudges("source_health")

    db = office.srv.db()
    with db.conn:  # as m022 marks an older row
        db.execute(
            "UPDATE journal SET anonymous = 1 WHERE id = (SELECT MIN(id) FROM journal WHERE status = 'rejected')"
        )
    db.close()
    await office.sweep(msk(TUESDAY, 10, 6))
    await office.sweep(msk(TUESDAY, 10, 7))
    assert alerts(office) == [alert]
    assert office.nudges("source_health") == [episode]

    assert (await post(office, msk(TUESDAY, 11, 0))).status == 200
    await office.sweep(msk(TUESDAY, 11, 1))
    assert len(alerts(office)) == 2 and "снова работает" in alerts(office)[1]


async def test_an_episode_gone_with_no_request_accepted_since_closes_without_works_again(
    office: Office, caplog: pytest.LogCaptureFixture
) -> None:
    """The upgrade to m022: an alerted streak of refusals all become anonymous, so the problem is no
    longer seen; "works again" used to quote the accepted request from before the alert."""
    assert (await post(office, msk(TUESDAY, 10, 0))).status == 200
    for minute in (1, 2, 3):
        assert (await post(office, msk(TUESDAY, 10, minute), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 10, 5))
    [alert] = alerts(office)

    db = office.srv.db()
    with db.conn:  # as m022 marks older rows
        db.execute("UPDATE journal SET anonymous = 1 WHERE status = 'rejected'")
    db.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="leadline.sweep"):
        await office.sweep(msk(TUESDAY, 10, 6))
    assert alerts(office) == [alert]
    [row] = office.nudges("source_health")
    assert (row["outcome"], row["ref"]) == ("cleared", "failing")
    [(level, message, fields)] = health_logs(caplog)
    assert level == logging.WARNING and "no longer seen" in message
    assert fields == {"source": "site", "problem": "failing"}


async def test_a_source_silent_for_longer_than_its_usual_gap_alerts_the_owner(office: Office) -> None:
    for i in range(12):  # a request every ten minutes, 10:00 to 11:50
        assert (
            await post(office, msk(TUESDAY, 10, 0) + timedelta(minutes=10 * i), phone=f"+7916000{i:04d}")
        ).status == 200
    await office.sweep(msk(TUESDAY, 12, 50))  # an hour of quiet: the floor, not more
    assert alerts(office) == []
    await office.sweep(msk(TUESDAY, 12, 51))
    [alert] = alerts(office)
    assert "site" in alert and "замолчал" in alert
    await office.sweep(msk(TUESDAY, 17, 0))
    assert len(alerts(office)) == 1

    assert (await post(office, msk(TUESDAY, 17, 10), phone="+79169999999")).status == 200
    await office.sweep(msk(TUESDAY, 17, 11))
    assert len(alerts(office)) == 2


async def test_silence_counts_working_minutes_only(office: Office) -> None:
    for i in range(12):
        await post(office, msk(TUESDAY, 17, 0) + timedelta(minutes=5 * i), phone=f"+7916000{i:04d}")
    # From 17:55 on Tuesday to 09:55 on Wednesday is 60 working minutes of quiet: the floor, not more.
    await office.sweep(msk(TUESDAY + timedelta(days=1), 9, 55))
    assert alerts(office) == []
    await office.sweep(msk(TUESDAY + timedelta(days=1), 9, 56))
    assert len(alerts(office)) == 1


async def test_a_source_with_no_history_is_not_judged(office: Office) -> None:
    await post(office, msk(TUESDAY, 10, 0))
    await office.sweep(msk(TUESDAY + timedelta(days=5), 12, 0))
    assert alerts(office) == []


def test_older_refusals_without_credentials_do_not_make_an_upgraded_source_fail(tmp_path: Path) -> None:
    """m022 on rows from before it: VK said a missing secret as "no 'secret' in the body", and Webflow
    its unsigned request without the token as "…; missing token: …", not "missing …" as the others did,
    so an upgraded VK or Webflow source kept failing on requests anyone could have sent."""
    refusals = {
        "vk": "no 'secret' in the body: set the source's secret on the community's Callback API",
        "webflow": "unsigned Webflow request (no x-webflow-signature): webhooks made in site settings must"
        " carry the source's token; missing token: send it as the 'token' query parameter or the"
        " X-Leadline-Token header",
        "site": "wrong token",  # a token that is there and wrong still counts
    }
    db = open_database(tmp_path / "old.db")
    for source, reason in refusals.items():
        rows = [("processed", None, None)] + [("rejected", 401, reason)] * 3
        for minute, (status, http_status, why) in enumerate(rows):
            db.execute(
                "INSERT INTO journal (source, method, received_at, status, http_status, reason)"
                " VALUES (?, 'POST', ?, ?, ?, ?)",
                [source, iso(msk(TUESDAY, 10, minute)), status, http_status, why],
            )
    db.execute("ALTER TABLE journal DROP COLUMN anonymous")
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm022_anonymous_refusals'")
    migrate(db)
    rules = HealthRules(
        calendar=WorkingCalendar.from_config(WorkingTimeSection(), MSK), sources=tuple(refusals)
    )
    assert [(f.source, f.problem) for f in assess(db, msk(TUESDAY, 10, 5), rules)] == [("site", "failing")]
    db.close()


def test_the_usual_gap_is_the_95th_percentile_of_working_minute_gaps() -> None:
    cal = WorkingCalendar.from_config(WorkingTimeSection(), ZoneInfo("Europe/Moscow"))
    times = [msk(TUESDAY, 10, 0) + timedelta(minutes=m) for m in (0, 5, 10, 15, 20, 100)]
    assert usual_gap(cal, times) == 80
    overnight = [msk(TUESDAY, 17, 50), msk(TUESDAY + timedelta(days=1), 9, 10)]
    assert usual_gap(cal, overnight) == 20


async def test_a_refused_request_does_not_end_a_silence(office: Office) -> None:
    for i in range(12):  # a request every ten minutes, 10:00 to 11:50
        assert (
            await post(office, msk(TUESDAY, 10, 0) + timedelta(minutes=10 * i), phone=f"+7916000{i:04d}")
        ).status == 200
    await office.sweep(msk(TUESDAY, 12, 51))
    [alert] = alerts(office)
    assert "замолчал" in alert

    # A scanner (or a stale token) knocks: refused, no lead, so the source is still silent.
    assert (await post(office, msk(TUESDAY, 13, 0), token="bad-secret-123")).status == 401
    await office.sweep(msk(TUESDAY, 13, 1))
    await office.sweep(msk(TUESDAY, 14, 0))
    assert alerts(office) == [alert]
    [row] = office.nudges("source_health")
    assert row["closed_at"] is None

    assert (await post(office, msk(TUESDAY, 14, 10), phone="+79169999999")).status == 200
    await office.sweep(msk(TUESDAY, 14, 11))
    await office.sweep(msk(TUESDAY, 14, 12))
    texts = alerts(office)
    assert len(texts) == 2 and "снова работает" in texts[1] and "14 апр., 14:10 MSK" in texts[1]


async def test_requests_anyone_can_send_raise_no_alert(office: Office) -> None:
    """An uptime monitor's GET and a stranger's POST without the token, every five minutes between
    real leads every half hour, used to send the owner "is failing" and "works again" in turn."""
    for i in range(12):
        await post(office, msk(TUESDAY, 9, 0) + timedelta(minutes=10 * i), phone=f"+7916000{i:04d}")
    at = msk(TUESDAY, 11, 0)
    for i in range(24):  # 11:00 to 12:55
        office.clock.now = at
        if i % 6 == 0:
            assert (await post(office, at, phone=f"+7916100{i:04d}")).status == 200
        elif i % 2:
            assert (await office.srv.session.get(f"{office.srv.url}/hooks/site")).status == 405
        else:
            assert (
                await office.srv.session.post(f"{office.srv.url}/hooks/site", data={"x": "1"})
            ).status == 401
        await office.sweep(at + timedelta(seconds=30))
        at += timedelta(minutes=5)
    assert alerts(office) == []
    assert office.nudges("source_health") == []

    # A token that is there and wrong is the source's own traffic failing: the probes between those
    # requests neither hide it nor end it.
    for minute in (0, 2, 4):
        assert (await post(office, msk(TUESDAY, 13, minute), token="bad-secret-123")).status == 401
        office.clock.now = msk(TUESDAY, 13, minute + 1)
        assert (await office.srv.session.get(f"{office.srv.url}/hooks/site")).status == 405
    await office.sweep(msk(TUESDAY, 13, 6))
    [alert] = alerts(office)
    assert "не работает" in alert and "wrong token" in alert and "Проверьте секрет или токен" in alert
    office.clock.now = msk(TUESDAY, 13, 7)
    assert (await office.srv.session.post(f"{office.srv.url}/hooks/site", data={"x": "1"})).status == 401
    await office.sweep(msk(TUESDAY, 13, 8))
    assert alerts(office) == [alert]


async def test_a_body_that_cannot_be_read_is_not_blamed_on_the_token(office: Office) -> None:
    assert (await post(office, msk(TUESDAY, 10, 0))).status == 200
    for minute in (1, 2, 3):
        office.clock.now = msk(TUESDAY, 10, minute)
        resp = await office.srv.session.post(
            f"{office.srv.url}/hooks/site?token=site-token",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert resp.status == 400
    await office.sweep(msk(TUESDAY, 10, 5))
    [alert] = alerts(office)
    assert "не удалось прочитать" in alert and "leadline replay" in alert
    assert "секрет" not in alert


def health_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, dict[str, Any]]]:
    return [
        (r.levelno, r.getMessage(), dict(getattr(r, "fields", {})))
        for r in caplog.records
        if r.name == "leadline.sweep" and "source" in getattr(r, "fields", {})
    ]


async def test_with_nobody_to_tell_the_log_says_it_and_an_owner_added_later_is_told(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A capture-only install (no owner, manager or team chat): the problem used to be recorded as
    alerted with nothing queued and nothing logged, so an owner added later never heard of it."""
    sources = [{"name": "site", "provider": "generic_form", "token": "site-token"}]
    clock = Clock(msk(TUESDAY, 8, 0))
    office = Office(
        await start_server(office_config(tmp_path, staff=[], sources=sources), clock=clock), clock
    )
    for i in range(12):  # a request every ten minutes, 10:00 to 11:50
        assert (
            await post(office, msk(TUESDAY, 10, 0) + timedelta(minutes=10 * i), phone=f"+7916000{i:04d}")
        ).status == 200
    with caplog.at_level(logging.INFO, logger="leadline.sweep"):
        result = await office.sweep(msk(TUESDAY, 12, 51))
        await office.sweep(msk(TUESDAY, 13, 0))
    assert result.alerts == []
    [(level, _, fields)] = health_logs(caplog)
    assert level == logging.WARNING and (fields["source"], fields["problem"]) == ("site", "silent")
    assert "+7916" not in str(fields)
    await office.srv.stop()

    # Anna is added as the owner and the process restarted while the source is still silent.
    office = Office(
        await start_server(office_config(tmp_path, staff=BASE["staff"], sources=sources), clock=clock), clock
    )
    await office.sweep(msk(TUESDAY, 14, 0))
    await office.sweep(msk(TUESDAY, 16, 0))
    [alert] = alerts(office)
    assert "site" in alert and "замолчал" in alert

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="leadline.sweep"):
        assert (await post(office, msk(TUESDAY, 16, 10), phone="+79169999999")).status == 200
        await office.sweep(msk(TUESDAY, 16, 11))
    assert len(alerts(office)) == 2 and "снова работает" in alerts(office)[1]
    assert [(level, fields) for level, _, fields in health_logs(caplog)] == [
        (logging.WARNING, {"source": "site", "problem": "silent"})
    ]
