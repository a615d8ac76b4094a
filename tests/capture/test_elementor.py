"""Elementor Pro through a running server: the custom-hook sample and both Webhook-action shapes.

The two Webhook-action bodies below are built from our reading of Elementor's behaviour (labels
as keys; "advanced data" nesting), which FORMATS §2.6 marks UNVERIFIED; no captured sample exists.
"""

from __future__ import annotations

from urllib.parse import urlencode

from tests.capture.form_checks import assert_expected_contact, config_with, journal, only_touch
from tests.samples import sample

HOOK = sample("elementor_new_record_custom_hook.txt")
TOKEN = "elementor-token-0001"

ADVANCED = {
    "form[id]": "a1b2c3d",
    "form[name]": "Заявка",
    "fields[name][id]": "name",
    "fields[name][type]": "text",
    "fields[name][title]": "Ваше имя",
    "fields[name][value]": "Алексей",
    "fields[name][raw_value]": "Алексей",
    "fields[name][required]": "1",
    "fields[field_7f3a][id]": "field_7f3a",
    "fields[field_7f3a][type]": "tel",
    "fields[field_7f3a][title]": "Как с вами связаться",
    "fields[field_7f3a][value]": "8 (495) 000-00-24",
    "fields[field_7f3a][raw_value]": "8 (495) 000-00-24",
    "fields[field_7f3a][required]": "1",
    "fields[field_9c1e][id]": "field_9c1e",
    "fields[field_9c1e][type]": "textarea",
    "fields[field_9c1e][title]": "Подробности",
    "fields[field_9c1e][value]": "Нужен расчёт",
    "fields[field_9c1e][raw_value]": "Нужен расчёт",
    "fields[field_9c1e][required]": "0",
    "meta[date][title]": "Date",
    "meta[date][value]": "March 5, 2024",
    "meta[page_url][title]": "Page URL",
    "meta[page_url][value]": "https://www.example.com/?utm_source=vk&utm_medium=cpc",
    "meta[remote_ip][title]": "Remote IP",
    "meta[remote_ip][value]": "203.0.113.7",
}

LABELS = {
    "Имя": "Алексей",
    "Телефон": "+7 495 000-00-25",
    "Email": "",
    "Сообщение": "Перезвоните",
    "Date": "March 5, 2024",
    "Page URL": "https://www.example.com/promo?utm_campaign=brand_msk",
    "Remote IP": "203.0.113.7",
    "form_id": "a1b2c3d",
    "form_name": "Заявка",
}


async def start(start_server, tmp_path):
    return await start_server(
        config_with(tmp_path, {"name": HOOK.source_name, "provider": "elementor", "token": TOKEN})
    )


async def post(srv, body, token=TOKEN):
    return await srv.session.post(
        f"{srv.url}{HOOK.path}", params={"token": token}, data=body, headers=HOOK.headers
    )


async def test_custom_hook_sample_becomes_a_touch(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, HOOK.body)).status == 200
    touch = only_touch(srv)
    assert touch["channel"] == HOOK.expected["channel"]
    assert touch["name"] == HOOK.expected["name"]
    assert touch["message"] == "Хочу узнать цену"
    assert touch["external_id"].startswith("elementor:")
    assert_expected_contact(srv, touch, HOOK.expected)


async def test_double_submission_is_a_no_op_and_wrong_token_refused(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, HOOK.body)).status == 200
    assert (await post(srv, HOOK.body)).status == 200
    assert (await post(srv, HOOK.body, token="elementor-token-0002")).status == 401
    assert srv.scalar("SELECT COUNT(*) FROM touches") == 1
    assert [(r["status"], r["touches_created"]) for r in journal(srv)] == [
        ("processed", 1),
        ("processed", 0),
        ("rejected", 0),
    ]


async def test_webhook_action_with_advanced_data_is_read_by_field_type(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, urlencode(ADVANCED))).status == 200
    touch = only_touch(srv)
    assert touch["name"] == "Алексей"
    assert touch["message"] == "Нужен расчёт"  # a textarea field with a custom id and title
    assert touch["utm"] == {"utm_source": "vk", "utm_medium": "cpc"}  # from the page URL
    assert touch["campaign"] == "vk_ads"
    assert_expected_contact(srv, touch, {"phone": "+74950000024"})


async def test_webhook_action_with_labels_as_keys(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    assert (await post(srv, urlencode(LABELS))).status == 200
    touch = only_touch(srv)
    assert (touch["name"], touch["message"]) == ("Алексей", "Перезвоните")
    assert touch["campaign"] == "brand_msk"  # utm_campaign in the page URL
    assert_expected_contact(srv, touch, {"phone": "+74950000025"})


async def test_form_without_phone_or_email_is_a_400_with_a_reason(start_server, tmp_path):
    srv = await start(start_server, tmp_path)
    resp = await post(srv, urlencode({"name": "Алексей", "message": "hi"}))
    assert resp.status == 400
    assert "no phone or email" in await resp.text()
    assert [(r["status"], r["http_status"]) for r in journal(srv)] == [("rejected", 400)]
