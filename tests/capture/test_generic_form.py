"""The generic form source through a running server: tokens, encodings, dedup and bad input."""

from __future__ import annotations

from tests.samples import sample

FORM = sample("generic_html_form_post.txt")


async def test_sample_form_post_becomes_a_touch_on_a_contact(start_server):
    srv = await start_server()
    resp = await srv.session.post(
        f"{srv.url}/hooks/form?token=form-token", data=FORM.body, headers=FORM.headers
    )
    assert resp.status == 200
    [touch] = srv.rows("SELECT * FROM touches")
    expected = FORM.expected
    assert touch["channel"] == expected["channel"]
    assert touch["name"] == expected["name"]
    assert touch["message"] == expected["message"]
    assert touch["campaign"] == "vk_ads"  # utm_source=vk
    idents = {
        r["kind"]: r["value"]
        for r in srv.rows("SELECT kind, value FROM identifiers WHERE contact_id = ?", [touch["contact_id"]])
    }
    assert idents == {"phone": expected["phone"], "email": expected["email"]}
    [row] = srv.rows("SELECT status, http_status, body FROM journal")
    assert (row["status"], row["http_status"], row["body"]) == ("processed", 200, FORM.body)
