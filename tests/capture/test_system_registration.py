"""Registration by the system: a source that says ``register`` has each of its touches registered as
it comes, origin ``system``, and the report counts them registered."""

from __future__ import annotations

from pathlib import Path

from tests.capture.test_blocking import AUTH, CLIENTS, post_form
from tests.capture.test_mango import MANGO_SOURCE, post_mango, signed_mango, summary
from tests.conftest import BASE, Running, StartServer, build_config

QUIZ = {
    "name": "quiz",
    "provider": "generic_form",
    "token": "quiz-token",
    "register": "lead",
    "temperature": "warm",
    "owner": "Boris",
}
JOBS = {
    "name": "jobs",
    "provider": "generic_form",
    "token": "jobs-token",
    "register": "not_a_lead",
    "reason": "job_seeker",
}


async def post_to(srv: Running, source: str, **fields: str) -> None:
    resp = await srv.session.post(f"{srv.url}/hooks/{source}?token={source}-token", data=fields)
    assert resp.status == 200, await resp.text()


async def test_a_register_lead_sources_touch_counts_as_registered_with_origin_system(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = build_config(
        tmp_path, sources=[*BASE["sources"], QUIZ, JOBS], api_clients=CLIENTS, block=[{"prefix": "+7800"}]
    )
    srv = await start_server(config)
    await post_to(srv, "quiz", phone="+7 916 100-00-01", name="Quiz taker", message="3 rooms, 60 m²")
    await post_to(srv, "jobs", email="cv@example.com", message="My CV")
    await post_form(srv, phone="+7 916 100-00-03", message="An ordinary form")
    await post_to(srv, "quiz", phone="8 800 555-35-35", message="A robot on the quiz")  # blocked: nobody

    registrations = srv.rows(
        "SELECT t.source, r.disposition, r.reason, r.origin, r.staff_id FROM registrations r"
        " JOIN touches t ON t.id = r.touch_id ORDER BY r.id"
    )
    assert registrations == [
        {"source": "quiz", "disposition": "lead", "reason": None, "origin": "system", "staff_id": None},
        {
            "source": "jobs",
            "disposition": "not_a_lead",
            "reason": "job_seeker",
            "origin": "system",
            "staff_id": None,
        },
    ]
    boris = srv.scalar("SELECT id FROM staff WHERE name = 'Boris'")
    assert srv.rows("SELECT temperature, stage, owner_id FROM leads") == [
        {"temperature": "warm", "stage": "new", "owner_id": boris}
    ]

    # the same person on the quiz again: registered once, their touch counted
    await post_to(srv, "quiz", phone="89161000001", message="Changed my mind: 4 rooms")
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 2

    async with srv.session.get(f"{srv.url}/api/report", headers=AUTH) as resp:
        report = await resp.json()
    assert (report["inbound_contacts"], report["registered"], report["leads"]) == (3, 2, 1)
    assert report["lrr"] == 0.6667
    assert report["by_channel"]["form"]["registered"] == 2


async def test_a_register_source_registers_a_call_once_it_is_over_and_not_a_blocked_one(
    start_server: StartServer, tmp_path: Path
) -> None:
    mango = {**MANGO_SOURCE, "register": "not_a_lead", "reason": "existing_client"}
    srv = await start_server(
        build_config(tmp_path, sources=[*BASE["sources"], mango], block=[{"short_call_seconds": 5}])
    )
    start = 1_776_150_000
    ringing = {
        "entry_id": "long",
        "call_id": "long-1",
        "seq": 1,
        "call_state": "Appeared",
        "location": "ivr",
        "from": {"number": "79161000001"},
        "to": {"number": "74950000001", "line_number": "74950000001"},
        "timestamp": start,
    }
    assert (await post_mango(srv, "/events/call", signed_mango(ringing))).status == 200
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE external_id = 'long' AND call_final = 0") == 1
    assert srv.scalar("SELECT COUNT(*) FROM registrations") == 0  # still ringing: not over yet

    for entry_id, number, seconds in (("long", "+7 916 100-00-01", 60), ("ping", "+7 916 100-00-02", 2)):
        payload = summary(entry_id, number, start=start, answered=False)
        payload["end_time"] = start + seconds
        assert (await post_mango(srv, "/events/summary", signed_mango(payload))).status == 200
    assert srv.rows(
        "SELECT t.external_id, r.disposition, r.reason, r.origin FROM registrations r JOIN touches t ON t.id = r.touch_id"
    ) == [
        {"external_id": "long", "disposition": "not_a_lead", "reason": "existing_client", "origin": "system"}
    ]
