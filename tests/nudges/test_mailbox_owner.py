"""A letter to someone's mailbox is theirs to register, however the To header names them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.conftest import BASE, StartServer
from tests.nudges.conftest import ANNA, BORIS, TUESDAY, Clock, Office, msk, office_config

POSTMARK = {"name": "postmark", "provider": "postmark", "username": "user", "password": "pass"}


@pytest.mark.parametrize(
    "to",
    [
        "Boris Petrov <boris@example.com>",
        "boris+leads@example.com",
        '"Sales" <sales@example.com>, Boris Petrov <Boris+site@Example.com>',
    ],
)
async def test_a_letter_to_a_mailbox_is_asked_of_its_owner(
    start_server: StartServer, tmp_path: Path, to: str
) -> None:
    staff = [BASE["staff"][0], {**BASE["staff"][1], "emails": ["boris@example.com"]}]
    config = office_config(tmp_path, staff=staff, sources=[*BASE["sources"], POSTMARK])
    clock = Clock(msk(TUESDAY, 10, 0))
    office = Office(await start_server(config, clock=clock), clock)
    letter = {
        "From": "natalia@example.net",
        "FromName": "Natalia",
        "To": to,
        "Subject": "Quote please",
        "TextBody": "Please call me back, +79161234567",
        "MessageID": "00000000-0000-0000-0000-00000000beef",
    }
    resp = await office.srv.session.post(
        f"{office.srv.url}/hooks/postmark",
        data=json.dumps(letter),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(b"user:pass").decode(),
        },
    )
    assert resp.status == 200, await resp.text()

    await office.sweep(msk(TUESDAY, 10, 15))
    [nudge] = office.nudges("register")
    assert nudge["chat_id"] == BORIS
    assert len(office.messages(BORIS)) == 1 and office.messages(ANNA) == []
