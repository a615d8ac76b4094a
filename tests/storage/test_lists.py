"""/missed lists the missed calls nobody has called back, however late the call back came."""

from __future__ import annotations

from pathlib import Path

from storage.db import open_database
from storage.lists import missed
from storage.nudges.actions import callback_nudge, mark_called_back
from tests.numbers.month import Month, month_config, msk, transaction


def test_a_call_back_after_the_sla_or_by_the_button_takes_the_call_off_the_missed_list(
    tmp_path: Path,
) -> None:
    config = month_config(tmp_path)
    m = Month(open_database(config.database_path), config)
    m.call("+79160003001", msk(10, 10), answered=False)
    m.call(
        "+79160003001", msk(10, 11), answered=True, extension="101", direction="out"
    )  # an hour on: past the SLA
    pressed = m.call("+79160003002", msk(10, 12), answered=False)
    m.call("+79160003003", msk(10, 14), answered=False)
    with transaction(m.db):
        nudge = callback_nudge(m.db, pressed, staff_id=m.staff["Anna"], chat_id=1, at=msk(10, 12, 5))
        mark_called_back(m.db, nudge, staff_id=m.staff["Anna"], at=msk(10, 12, 10))
    page = missed(m.db, None, 10)
    assert [item["phone_raw"] for item in page.items] == ["+79160003003"]
    assert page.total == 1
