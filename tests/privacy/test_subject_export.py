"""``leadline subject-export``: everything held about one person, as JSON, every touch among it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.cli import run_cli
from tests.conftest import StartServer
from tests.privacy.people import E164, EMAIL, NAME, PHONE_TYPED, leave_a_trail, privacy_config

WORK_EMAIL = "o.zwanziger@work.example"


async def test_subject_export_holds_every_touch_and_raw_request_of_the_person(
    tmp_path: Path, start_server: StartServer
) -> None:
    srv = await start_server(privacy_config(tmp_path))
    form = f"{srv.url}/hooks/form?token=form-token"
    # First known by a work address alone; then the phone and that address together merge the two.
    async with srv.session.post(form, json={"email": WORK_EMAIL, "message": "Brochure, please"}) as resp:
        assert resp.status == 200
    await leave_a_trail(srv)
    async with srv.session.post(form, json={"phone": PHONE_TYPED, "email": WORK_EMAIL}) as resp:
        assert resp.status == 200
    [person] = srv.rows("SELECT contact_id FROM identifiers WHERE value = ?", [E164])
    live = person["contact_id"]
    touches = srv.rows("SELECT id, journal_id FROM touches WHERE contact_id = ? ORDER BY id", [live])
    assert len(touches) == 4 and srv.scalar("SELECT COUNT(*) FROM merges") == 1
    cfg = str(tmp_path / "config.toml")

    out = tmp_path / "subject.json"
    result = await run_cli("subject-export", PHONE_TYPED, "--config", cfg, "--output", str(out))
    assert result.code == 0, result.output
    held = json.loads(out.read_text(encoding="utf-8"))
    assert held["contact_id"] == live
    assert sorted(t["id"] for t in held["touches"]) == [t["id"] for t in touches]
    assert {c["id"] for c in held["contacts"]} == {1, 2}  # the person and the contact merged into them
    assert {(i["kind"], i["value"]) for i in held["identifiers"]} == {
        ("phone", E164),
        ("email", EMAIL.lower()),
        ("email", WORK_EMAIL),
    }
    assert [r["disposition"] for r in held["registrations"]] == ["lead"]
    assert [lead["need"] for lead in held["leads"]] == [f"A kitchen for {NAME}"]
    requests = {r["id"]: r for r in held["requests"]}
    assert {t["journal_id"] for t in touches} <= set(requests)
    refused = [r for r in requests.values() if r["status"] == "rejected"]
    assert len(refused) == 1 and "8 (916) 123-45-67" in refused[0]["body"]
    assert any(PHONE_TYPED in r["body"] for r in requests.values() if r["status"] == "processed")

    printed = await run_cli("subject-export", EMAIL, "--config", cfg)
    assert printed.code == 0 and json.loads(printed.output)["contact_id"] == live
    nobody = await run_cli("subject-export", "+7 999 000-00-00", "--config", cfg)
    assert (
        nobody.code == 1 and "Nothing to export: no contact has this phone number or email" in nobody.output
    )


async def test_the_file_of_a_subject_export_is_readable_by_its_owner_only(
    tmp_path: Path, start_server: StartServer
) -> None:
    """Everything held about a person went to a file every user of the machine could read (umask
    022: 644), while a backup of the same data is 600."""
    srv = await start_server(privacy_config(tmp_path))
    async with srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", json={"phone": PHONE_TYPED}
    ) as resp:
        assert resp.status == 200
    out = tmp_path / "subject.json"

    previous = os.umask(0o022)  # a shell's usual umask: new files readable by everyone
    try:
        result = await run_cli(
            "subject-export", PHONE_TYPED, "--config", str(tmp_path / "config.toml"), "--output", str(out)
        )
    finally:
        os.umask(previous)

    assert result.code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["identifiers"][0]["value"] == E164
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
