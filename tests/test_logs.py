"""Logs never carry a secret, a full phone number or an email, whatever reaches them."""

from __future__ import annotations

import logging

from leadline.logs import JsonFormatter, scrub


def test_scrub_masks_numbers_and_addresses_but_not_dates():
    line = scrub("caller +7 (916) 123-45-67 wrote ivan.petrov@example.com on 2026-11-23 at 18:02")
    assert "123-45-67" not in line and "ivan.petrov@example.com" not in line
    assert "2026-11-23" in line and "18:02" in line


async def test_request_log_lines_hold_no_token_phone_or_email(start_server, caplog):
    srv = await start_server()
    caplog.set_level(logging.INFO)
    body = {"phone": "+7 916 765-43-21", "email": "secret.person@example.com", "submission_id": "1"}
    assert (await srv.session.post(f"{srv.url}/hooks/form?token=form-token", data=body)).status == 200
    assert (await srv.session.post(f"{srv.url}/hooks/form?token=wrong-token", data=body)).status == 401
    bad = {"phone": "+7 916 765-43-21", "email": "secret.person@example.com", "x": "\udcff"}
    await srv.session.post(f"{srv.url}/hooks/form", params={"token": "form-token"}, data=str(bad).encode())
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"status": 200' in line for line in lines)
    assert any('"status": 401' in line for line in lines)
    text = "\n".join(lines)
    for secret in ("form-token", "wrong-token", "9167654321", "765-43-21", "secret.person@example.com"):
        assert secret not in text
