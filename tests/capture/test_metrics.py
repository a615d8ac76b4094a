"""``/metrics`` as a user's Prometheus scrapes it: the names, the types, and nothing it does not expect."""

from __future__ import annotations

import re

from tests.capture.test_core_http import FORM, post_form
from tests.conftest import StartServer

#: Every family Leadline publishes, with the type Prometheus is told.
LEADLINE = {
    "leadline_requests_total": "counter",
    "leadline_touches_created_total": "counter",
    "leadline_journal_waiting": "gauge",
    "leadline_journal_failed": "gauge",
    "leadline_webhook_deliveries": "gauge",
    "leadline_webhook_oldest_pending_seconds": "gauge",
    "leadline_request_seconds": "histogram",
    "leadline_writer_commits_total": "counter",
    "leadline_writer_jobs_total": "counter",
}


def types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert match, text
    return float(match[1])


async def test_a_scrape_has_counters_named_total_the_process_and_no_created_series(start_server: StartServer):
    srv = await start_server()
    await post_form(srv, FORM.body, headers=FORM.headers)
    resp = await srv.session.get(f"{srv.url}/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()

    published = types(text)
    assert {name: kind for name, kind in published.items() if name.startswith("leadline_")} == LEADLINE
    assert published["process_cpu_seconds_total"] == "counter"
    assert published["process_resident_memory_bytes"] == "gauge"
    assert published["python_info"] == "gauge"
    assert [
        name for name, kind in published.items() if kind == "counter" and not name.endswith("_total")
    ] == []
    samples = re.findall(r"^([a-z_]+)[{ ]", text, re.M)
    assert samples and [name for name in samples if name.endswith("_created")] == []
    # The journal row and its touch were committed: the writers counted it.
    assert value(text, "leadline_writer_commits_total") >= 1
    assert value(text, "leadline_writer_jobs_total") >= value(text, "leadline_writer_commits_total")
    assert value(text, 'leadline_touches_created_total{channel="form"}') == 1


async def test_a_touch_over_http_is_counted_once_and_a_retry_not_at_all(start_server: StartServer):
    srv = await start_server()
    for _ in range(2):  # the form's retry: the same body on the same day is the same submission
        assert (await post_form(srv, FORM.body, headers=FORM.headers)).status == 200
    other = {"phone": "+7 916 765-43-21", "name": "Olga"}
    assert (await post_form(srv, other)).status == 200
    text = await (await srv.session.get(f"{srv.url}/metrics")).text()
    assert srv.scalar("SELECT COUNT(*) FROM touches WHERE channel = 'form'") == 2
    assert value(text, 'leadline_touches_created_total{channel="form"}') == 2
    assert value(text, 'leadline_requests_total{source="form",status="200"}') == 3
