"""The schema: one home for every table, as registered migrations safe to re-run.

Times are stored as ISO-8601 text in UTC (``2026-11-23T17:42:28.123456+00:00``), so they sort
and compare as text and every query can turn them into local days with the configured zone.
A new change to the schema is a new migration appended below, never an edit of an old one.
A CHECK that a column holds one of several words spells them out with OR (``kind = 'a' OR kind =
'b' OR kind = 'c'``), never as ``IN (...)``: see :func:`m031_checks_without_lists`.
"""

from __future__ import annotations

import re

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("leadline")


def _run(db: Database, statements: str) -> None:
    for statement in statements.split(";\n"):
        if statement.strip():
            db.execute(statement)


@migrations()
def m001_core(db: Database) -> None:
    _run(
        db,
        """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT
);

CREATE TABLE journal (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    provider TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '',
    query_string TEXT NOT NULL DEFAULT '',
    headers TEXT NOT NULL DEFAULT '{}',
    body BLOB NOT NULL DEFAULT x'',
    body_size INTEGER NOT NULL DEFAULT 0,
    remote TEXT,
    url TEXT NOT NULL DEFAULT '',
    received_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('received', 'processed', 'rejected', 'failed')),
    http_status INTEGER,
    reason TEXT,
    note TEXT,
    replay_key TEXT,
    processed_at TEXT,
    events INTEGER NOT NULL DEFAULT 0,
    touches_created INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX journal_status ON journal (status, id);
CREATE INDEX journal_source_time ON journal (source, received_at);
CREATE UNIQUE INDEX journal_replay_key ON journal (source, replay_key)
    WHERE replay_key IS NOT NULL AND status = 'processed';

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    name TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    merged_into INTEGER REFERENCES contacts (id),
    blocked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX contacts_name ON contacts (name COLLATE NOCASE);

CREATE TABLE identifiers (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'email')),
    value TEXT NOT NULL,
    raw TEXT NOT NULL,
    valid INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX identifiers_valid_key ON identifiers (kind, value) WHERE valid = 1;
CREATE UNIQUE INDEX identifiers_per_contact ON identifiers (contact_id, kind, value);
CREATE INDEX identifiers_value ON identifiers (value);

CREATE TABLE merges (
    id INTEGER PRIMARY KEY,
    survivor_id INTEGER NOT NULL REFERENCES contacts (id),
    merged_id INTEGER NOT NULL REFERENCES contacts (id),
    reason TEXT NOT NULL,
    staff_id INTEGER REFERENCES staff (id),
    touch_id INTEGER REFERENCES touches (id),
    moved TEXT NOT NULL DEFAULT '{}',
    at TEXT NOT NULL,
    undone_at TEXT,
    undone_by INTEGER REFERENCES staff (id)
);
CREATE INDEX merges_survivor ON merges (survivor_id);
CREATE INDEX merges_merged ON merges (merged_id);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'product' CHECK (kind IN ('product', 'company')),
    from_config INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE TABLE campaign_costs (
    id INTEGER PRIMARY KEY,
    campaign TEXT NOT NULL,
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL,
    item TEXT NOT NULL DEFAULT 'other',
    amount REAL NOT NULL,
    origin TEXT NOT NULL DEFAULT 'config' CHECK (origin IN ('config', 'bot', 'api')),
    staff_id INTEGER REFERENCES staff (id),
    created_at TEXT NOT NULL
);
CREATE INDEX campaign_costs_campaign ON campaign_costs (campaign, period_start);

CREATE TABLE staff (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    telegram_id INTEGER UNIQUE,
    role TEXT NOT NULL DEFAULT 'staff' CHECK (role IN ('owner', 'manager', 'staff')),
    language TEXT,
    extensions TEXT NOT NULL DEFAULT '[]',
    emails TEXT NOT NULL DEFAULT '[]',
    from_config INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    approved_by INTEGER REFERENCES staff (id),
    created_at TEXT NOT NULL
);

CREATE TABLE access_requests (
    id INTEGER PRIMARY KEY,
    telegram_id INTEGER NOT NULL,
    name TEXT,
    username TEXT,
    language TEXT,
    requested_at TEXT NOT NULL,
    decision TEXT CHECK (decision IN ('staff', 'manager', 'refused')),
    decided_by INTEGER REFERENCES staff (id),
    decided_at TEXT
);
CREATE INDEX access_requests_user ON access_requests (telegram_id);

CREATE TABLE touches (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('call', 'form', 'email', 'manual')),
    direction TEXT NOT NULL DEFAULT 'in' CHECK (direction IN ('in', 'out')),
    contact_id INTEGER REFERENCES contacts (id),
    journal_id INTEGER REFERENCES journal (id),
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    campaign TEXT,
    hidden_caller INTEGER NOT NULL DEFAULT 0,
    phone_raw TEXT,
    email_raw TEXT,
    name TEXT,
    message TEXT,
    utm TEXT NOT NULL DEFAULT '{}',
    tracking_number TEXT,
    to_address TEXT,
    dropped TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL DEFAULT '{}',
    call_status TEXT,
    answered INTEGER,
    duration_s INTEGER,
    talk_s INTEGER,
    extension TEXT,
    staff_id INTEGER REFERENCES staff (id),
    recording TEXT,
    last_seq INTEGER,
    call_final INTEGER NOT NULL DEFAULT 0,
    called_back_at TEXT,
    called_back_by INTEGER REFERENCES touches (id),
    updated_at TEXT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX touches_contact ON touches (contact_id, occurred_at);
CREATE INDEX touches_time ON touches (occurred_at, channel, direction);
CREATE INDEX touches_campaign ON touches (campaign, occurred_at);

CREATE TABLE call_events (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    event_key TEXT NOT NULL,
    touch_id INTEGER NOT NULL REFERENCES touches (id),
    journal_id INTEGER REFERENCES journal (id),
    seq INTEGER,
    status TEXT NOT NULL,
    applied INTEGER NOT NULL DEFAULT 1,
    at TEXT NOT NULL,
    UNIQUE (source, event_key)
);
CREATE INDEX call_events_touch ON call_events (touch_id);

CREATE TABLE registrations (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    touch_id INTEGER REFERENCES touches (id),
    disposition TEXT NOT NULL CHECK (disposition IN ('lead', 'not_a_lead')),
    reason TEXT CHECK (reason IS NULL OR reason IN
        ('partner', 'job_seeker', 'spam', 'wrong_number', 'existing_client', 'other')),
    campaign TEXT,
    staff_id INTEGER REFERENCES staff (id),
    origin TEXT NOT NULL DEFAULT 'bot' CHECK (origin IN ('bot', 'api', 'system', 'cli')),
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX registrations_contact ON registrations (contact_id, created_at);
CREATE INDEX registrations_time ON registrations (created_at);

CREATE TABLE leads (
    id INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    registration_id INTEGER REFERENCES registrations (id),
    temperature TEXT NOT NULL CHECK (temperature IN ('hot', 'warm', 'cold')),
    stage TEXT NOT NULL DEFAULT 'new'
        CHECK (stage IN ('new', 'qualified', 'accepted', 'returned', 'won', 'lost')),
    owner_id INTEGER REFERENCES staff (id),
    campaign TEXT,
    need TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    follow_up_on TEXT,
    amount REAL,
    won_amount REAL,
    lost_reason TEXT,
    returned_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    qualified_at TEXT,
    accepted_at TEXT,
    closed_at TEXT
);
CREATE INDEX leads_contact ON leads (contact_id);
CREATE INDEX leads_owner ON leads (owner_id, stage);
CREATE INDEX leads_time ON leads (created_at);

CREATE TABLE lead_changes (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL REFERENCES leads (id),
    field TEXT NOT NULL,
    old TEXT,
    new TEXT,
    staff_id INTEGER REFERENCES staff (id),
    at TEXT NOT NULL
);
CREATE INDEX lead_changes_lead ON lead_changes (lead_id, at);

CREATE TABLE blocklist (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'email')),
    value TEXT NOT NULL,
    staff_id INTEGER REFERENCES staff (id),
    reason TEXT,
    at TEXT NOT NULL,
    UNIQUE (kind, value)
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    method TEXT NOT NULL DEFAULT 'sendMessage',
    payload TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    created_at TEXT NOT NULL,
    not_before TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TEXT,
    message_id INTEGER
);
CREATE INDEX outbox_due ON outbox (status, not_before);

CREATE TABLE nudges (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('register', 'callback', 'follow_up', 'stale', 'source_health')),
    subject TEXT NOT NULL,
    level INTEGER NOT NULL DEFAULT 0,
    staff_id INTEGER REFERENCES staff (id),
    chat_id INTEGER,
    due_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    outbox_id INTEGER REFERENCES outbox (id),
    acted_at TEXT,
    snoozed_until TEXT,
    tries INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, subject, level)
);
CREATE INDEX nudges_staff ON nudges (staff_id, sent_at);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (webhook_id, endpoint)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at)
""",
    )


@migrations()
def m002_nudge_tracking(db: Database) -> None:
    """What each nudge is about, who acted and how, and every message that carried it.

    A nudge row is one question (register this touch, call this number back) at one level. A
    delivery is that question owed to one chat in one round (0 first, then one per reminder after a
    snooze or "Can't reach"); it is written when owed (``not_before``) and gets its ``message_id``
    when a batched message (``nudge_messages``: one person, many cards) carries it. So a copy for a
    second manager or a reminder is one more delivery, never a second nudge, and a delivery is
    carried at most once. ``closed_at`` ends the question; ``outcome`` says how.
    """
    _run(
        db,
        """
ALTER TABLE nudges ADD COLUMN contact_id INTEGER REFERENCES contacts (id);
ALTER TABLE nudges ADD COLUMN touch_id INTEGER REFERENCES touches (id);
ALTER TABLE nudges ADD COLUMN lead_id INTEGER REFERENCES leads (id);
ALTER TABLE nudges ADD COLUMN ref TEXT;
ALTER TABLE nudges ADD COLUMN round INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nudges ADD COLUMN outcome TEXT;
ALTER TABLE nudges ADD COLUMN acted_by INTEGER REFERENCES staff (id);
ALTER TABLE nudges ADD COLUMN closed_at TEXT;
CREATE INDEX nudges_open_contact ON nudges (contact_id, kind, level) WHERE closed_at IS NULL;
CREATE INDEX nudges_open_time ON nudges (created_at) WHERE closed_at IS NULL;
CREATE INDEX nudges_unsent ON nudges (created_at) WHERE sent_at IS NULL AND outbox_id IS NOT NULL;
CREATE INDEX nudges_lead ON nudges (lead_id, kind);
CREATE INDEX nudges_touch ON nudges (touch_id);

CREATE TABLE nudge_messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL,
    staff_id INTEGER REFERENCES staff (id),
    outbox_id INTEGER REFERENCES outbox (id),
    cards INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX nudge_messages_chat ON nudge_messages (chat_id, created_at);

CREATE TABLE nudge_deliveries (
    nudge_id INTEGER NOT NULL REFERENCES nudges (id),
    chat_id INTEGER NOT NULL,
    round INTEGER NOT NULL DEFAULT 0,
    staff_id INTEGER REFERENCES staff (id),
    not_before TEXT NOT NULL,
    message_id INTEGER REFERENCES nudge_messages (id),
    PRIMARY KEY (nudge_id, chat_id, round)
);
CREATE INDEX nudge_deliveries_pending ON nudge_deliveries (not_before) WHERE message_id IS NULL;
CREATE INDEX nudge_deliveries_message ON nudge_deliveries (message_id);

CREATE INDEX leads_follow_up ON leads (follow_up_on) WHERE follow_up_on IS NOT NULL AND stage NOT IN ('won', 'lost');
CREATE INDEX leads_open_updated ON leads (updated_at) WHERE stage NOT IN ('won', 'lost')
""",
    )


@migrations()
def m003_report_indexes(db: Database) -> None:
    """A covering index for the reports' scan of a period's touches.

    A year's report reads a million touches by time; through ``touches_time`` each row costs a
    look-up in the table, and through this index none does. ``answered`` is in it so that the
    missed-call query finds its few rows in the index too.
    """
    _run(
        db,
        """
CREATE INDEX touches_report ON touches (
    occurred_at, direction, dropped, contact_id, channel, campaign, staff_id, blocked, hidden_caller, answered
)
""",
    )


@migrations()
def m004_pending_recordings(db: Database) -> None:
    """Recordings that arrived before any other event of their call, waiting for the call's touch."""
    _run(
        db,
        """
CREATE TABLE pending_recordings (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    call_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    recording TEXT NOT NULL,
    journal_id INTEGER REFERENCES journal (id),
    at TEXT NOT NULL,
    UNIQUE (source, event_key)
);
CREATE INDEX pending_recordings_call ON pending_recordings (source, call_id)
""",
    )


@migrations()
def m005_request_bindings(db: Database) -> None:
    """What a weak signature was first seen with (a Zadarma call's signed fields and its pbx_call_id),
    so a captured request cannot be sent again about another event. Keys are digests, not numbers."""
    _run(
        db,
        """
CREATE TABLE request_bindings (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    bound_at TEXT NOT NULL,
    PRIMARY KEY (source, key)
) WITHOUT ROWID
""",
    )


@migrations()
def m006_personal_data(db: Database) -> None:
    """What erasing a person and the retention rules leave behind, so both can be shown and replayed.

    ``erasures`` records each erasure: when, by whom, why (``request`` or a retention rule) and which
    kinds of identifier went, never their values. A contact whose data is gone keeps its row, with
    ``erased_at``, so its touches still count in past reports. A journal row keeps its place with
    ``redacted_at`` and ``redacted`` (``erased`` or ``expired``) once its raw request is gone; the
    partial index finds the processed rows whose raw request retention has still to drop.
    """
    _run(
        db,
        """
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('cli', 'api', 'bot', 'retention')),
    actor TEXT NOT NULL,
    staff_id INTEGER REFERENCES staff (id),
    reason TEXT NOT NULL CHECK (reason IN ('request', 'unregistered', 'refused')),
    contact_id INTEGER REFERENCES contacts (id),
    kinds TEXT NOT NULL DEFAULT '[]',
    counts TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX erasures_contact ON erasures (contact_id);
ALTER TABLE contacts ADD COLUMN erased_at TEXT;
ALTER TABLE journal ADD COLUMN redacted_at TEXT;
ALTER TABLE journal ADD COLUMN redacted TEXT CHECK (redacted IS NULL OR redacted IN ('erased', 'expired'));
CREATE INDEX journal_raw_kept ON journal (received_at) WHERE status = 'processed' AND redacted_at IS NULL
""",
    )


@migrations()
def m007_idempotency_keys(db: Database) -> None:
    """What ``POST /api/registrations`` answered to each ``Idempotency-Key``, so a CRM's retry gets
    the same answer and makes no second lead (leadline/api.py). Keyed by API client and key; the
    request's fingerprint tells a retry from a different request reusing the key. ``contact_id``
    lets an erasure drop the rows about the person; ``created_at`` lets old keys expire."""
    _run(
        db,
        """
CREATE TABLE idempotency_keys (
    client TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    contact_id INTEGER REFERENCES contacts (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (client, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_time ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_contact ON idempotency_keys (contact_id)
""",
    )


@migrations()
def m008_bot_states(db: Database) -> None:
    """The bot's conversation states and drafts (aiogram's FSM storage, bot/fsm.py), so a card half
    filled in is still there after a restart. One row per aiogram storage key. A row whose data is
    about a person names their contact and touch, so an erasure deletes it with them; ``updated_at``
    lets the retention pass drop what nobody touched for ``journal_days``."""
    _run(
        db,
        """
CREATE TABLE bot_states (
    key TEXT PRIMARY KEY,
    state TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    contact_id INTEGER REFERENCES contacts (id),
    touch_id INTEGER REFERENCES touches (id),
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX bot_states_contact ON bot_states (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX bot_states_touch ON bot_states (touch_id) WHERE touch_id IS NOT NULL;
CREATE INDEX bot_states_time ON bot_states (updated_at)
""",
    )


@migrations()
def m009_clean_base(db: Database) -> None:
    """Do not contact, the splits that stick, and where a block-list entry came from.

    ``do_not_contact`` keeps a person out of the lists meant for campaigns while their touches still
    count. ``merge_exceptions`` holds pairs of contacts a manager said are two people (an undone merge
    or "not the same person"), stored once with the lower id first: the dedup rule never joins them
    again, only a manager's merge by hand does. It finds the contacts merged into each of two it is
    about to join through ``contacts_merged_into``, a partial index as small as the merges.
    """
    _run(
        db,
        """
ALTER TABLE contacts ADD COLUMN do_not_contact INTEGER NOT NULL DEFAULT 0;
ALTER TABLE contacts ADD COLUMN do_not_contact_at TEXT;
CREATE TABLE merge_exceptions (
    low_id INTEGER NOT NULL REFERENCES contacts (id),
    high_id INTEGER NOT NULL REFERENCES contacts (id),
    reason TEXT NOT NULL CHECK (reason IN ('undone', 'not_same_person')),
    staff_id INTEGER REFERENCES staff (id),
    at TEXT NOT NULL,
    PRIMARY KEY (low_id, high_id),
    CHECK (low_id < high_id)
) WITHOUT ROWID;
CREATE INDEX merge_exceptions_high ON merge_exceptions (high_id);
CREATE INDEX contacts_merged_into ON contacts (merged_into) WHERE merged_into IS NOT NULL
""",
    )


def _widen(db: Database, tables: tuple[str, ...], checks: tuple[tuple[str, str], ...]) -> None:
    """Widen CHECK constraints by editing the schema text in place instead of copying the tables.

    Only a widening (or the same constraint spelled another way) is safe this way, since every
    stored row still satisfies the new constraint:
    SQLite's documented shortcut for it (sqlite.org/lang_altertable.html, "making other kinds of
    table schema changes"). The tables hold millions of rows and are referenced by half the others.
    """
    version = int(db.execute("PRAGMA schema_version").fetchone()[0])
    db.execute("PRAGMA writable_schema = ON")
    try:
        for table in tables:
            (sql,) = db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
            ).fetchone()
            widened = sql
            for old, new in checks:
                widened = widened.replace(old, new)
            if widened == sql:
                raise RuntimeError(f"{table}: the schema has none of the constraints to widen")
            sql = widened
            db.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", [sql, table])
        db.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        db.execute("PRAGMA writable_schema = OFF")


#: The CHECK constraints m010 widens, as m001 wrote them and as they become.
_WIDENED = (
    (
        "CHECK (kind IN ('phone', 'email'))",
        "CHECK (kind IN ('phone', 'email', 'telegram_id', 'telegram_username', 'vk_id', 'avito_id',"
        " 'whatsapp_id', 'whatsapp_username'))",
    ),
    (
        "CHECK (channel IN ('call', 'form', 'email', 'manual'))",
        "CHECK (channel IN ('call', 'form', 'email', 'manual', 'chat'))",
    ),
)


@migrations()
def m010_chats(db: Database) -> None:
    """Chats: the channel ``chat``, the chat id kinds, and the messages a conversation touch holds.

    The CHECK constraints are widened in place (:func:`_widen`). ``touches.conversation`` keys a chat touch's
    dialogue; ``chat_messages`` holds each message a touch took in, so a provider's retry of any of
    them is a no-op, the gap is measured from the last one, and an erasure finds the request of each.
    """
    _widen(db, ("identifiers", "blocklist", "touches"), _WIDENED)
    _run(
        db,
        """
ALTER TABLE touches ADD COLUMN conversation TEXT;
CREATE INDEX touches_conversation ON touches (source, conversation, occurred_at) WHERE conversation IS NOT NULL;
CREATE TABLE chat_messages (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    touch_id INTEGER NOT NULL REFERENCES touches (id),
    journal_id INTEGER REFERENCES journal (id),
    at TEXT NOT NULL,
    PRIMARY KEY (source, external_id)
) WITHOUT ROWID;
CREATE INDEX chat_messages_touch ON chat_messages (touch_id, at)
""",
    )


@migrations()
def m011_arrival_cards(db: Database) -> None:
    """Cards on arrival, and who a touch was given to.

    ``touches.assignee_id`` is the staff member a touch was given to (its extension's owner for a call,
    the source's owner or the round robin for a form or a letter); NULL for the team chat.
    ``touches.arrival`` is what the arrival pass made of it: NULL not yet (new, or held until working
    time), ``card`` on a card, ``none`` no card (hidden caller, blocked, dropped, outbound, registered
    before). Touches stored before this migration are ``none``: switching the feature on sends no
    history. An ``arrival_cards`` row is one message about one contact's burst of touches: the outbox
    row that sent it (its ``message_id`` is what later edits name) and how many touches it counts.
    The reports' covering index (m003) takes ``assignee_id`` too: a report credits a form's assignee.
    """
    _run(
        db,
        """
ALTER TABLE touches ADD COLUMN assignee_id INTEGER REFERENCES staff (id);
ALTER TABLE touches ADD COLUMN arrival TEXT CHECK (arrival IS NULL OR arrival IN ('card', 'none'));
UPDATE touches SET arrival = 'none';
CREATE INDEX touches_arrival_pending ON touches (received_at) WHERE arrival IS NULL;
DROP INDEX touches_report;
CREATE INDEX touches_report ON touches (
    occurred_at, direction, dropped, contact_id, channel, campaign, staff_id, assignee_id, blocked, hidden_caller,
    answered
);
CREATE INDEX touches_assignee ON touches (assignee_id, received_at);

CREATE TABLE arrival_cards (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('register', 'callback', 'repeat')),
    contact_id INTEGER NOT NULL REFERENCES contacts (id),
    staff_id INTEGER REFERENCES staff (id),
    chat_id INTEGER NOT NULL,
    first_touch_id INTEGER NOT NULL REFERENCES touches (id),
    last_touch_id INTEGER NOT NULL REFERENCES touches (id),
    touches INTEGER NOT NULL DEFAULT 1,
    lead_id INTEGER REFERENCES leads (id),
    outbox_id INTEGER NOT NULL REFERENCES outbox (id),
    opened_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE INDEX arrival_cards_open ON arrival_cards (contact_id, kind) WHERE closed_at IS NULL
""",
    )


@migrations()
def m012_chat_replies(db: Database) -> None:
    """The business's own replies in chats: the answer that speed to lead measures, never a touch.

    A reply names the touch it answered (its conversation's latest at the reply's moment; NULL when
    the business wrote first), so a merge that moves the touch takes the reply with it and the
    reports find its contact through the touch. Keyed by the message, so a retry is a no-op.
    """
    _run(
        db,
        """
CREATE TABLE chat_replies (
    source TEXT NOT NULL,
    external_id TEXT NOT NULL,
    touch_id INTEGER REFERENCES touches (id),
    journal_id INTEGER REFERENCES journal (id),
    at TEXT NOT NULL,
    PRIMARY KEY (source, external_id)
) WITHOUT ROWID;
CREATE INDEX chat_replies_at ON chat_replies (at, touch_id) WHERE touch_id IS NOT NULL;
CREATE INDEX chat_replies_touch ON chat_replies (touch_id)
""",
    )


@migrations()
def m013_held_arrivals(db: Database) -> None:
    """A touch held until working time is marked ``held``, so a pass outside working hours reads only
    what arrived since, not every touch held since the evening (under a night's flood of forms each
    pass read them all again: quadratic, and the writer taken every second). Held touches are read
    again once working time comes, and at each start, when the rules may have changed.
    """
    _widen(
        db,
        ("touches",),
        (
            (
                "CHECK (arrival IS NULL OR arrival IN ('card', 'none'))",
                "CHECK (arrival IS NULL OR arrival IN ('card', 'none', 'held'))",
            ),
        ),
    )
    _run(db, "CREATE INDEX touches_arrival_held ON touches (received_at) WHERE arrival = 'held'")


@migrations()
def m014_round_robin_count(db: Database) -> None:
    """Round robin counts what each person was given today, calls aside, for every form it assigns.

    ``touches_assignee`` left ``channel`` to the table, so each count read every row of the day:
    a flood of forms in working hours spent a third of the server's time there. This index answers
    the count by itself, and holds only the touches a person was given.
    """
    _run(
        db,
        # ``channel`` is in the key although the condition fixes it: SQLite only counts from the
        # index alone (a covering index) when the column it tests is in it.
        "CREATE INDEX touches_assignee_not_calls ON touches (assignee_id, received_at, channel)"
        " WHERE assignee_id IS NOT NULL AND channel != 'call'",
    )


@migrations()
def m015_dial_claims(db: Database) -> None:
    """A ``📞 Call back`` under way, one row per contact (storage/dials.py): its primary key is what
    makes a second press conflict instead of ringing the staff member and the client twice."""
    _run(
        db,
        """
CREATE TABLE dial_claims (
    contact_id INTEGER PRIMARY KEY REFERENCES contacts (id),
    touch_id INTEGER NOT NULL REFERENCES touches (id),
    staff_id INTEGER NOT NULL REFERENCES staff (id),
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
)
""",
    )


@migrations()
def m016_outbox_interruptions(db: Database) -> None:
    """How many times an outbox row's send was cut off unconfirmed (a crash, a stop's wait running
    out), apart from ``attempts``, which also counts every 429, 5xx and timeout: only the former says
    that the send itself may be what kills the process, so only it may make the row be given up."""
    _run(db, "ALTER TABLE outbox ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0")


@migrations()
def m017_waiting_replies(db: Database) -> None:
    """A business's reply delivered before the customer's message it answers waits for it.

    ``chat_replies.conversation`` is the key of the dialogue (as ``touches.conversation``) of a reply
    that found no touch to answer when it came: the customer's message may still be on its way (a
    provider retrying it later), and the touch it makes takes the replies sent since
    (storage/chats.py). It is NULL once the reply answers a touch, whose own key says the rest, so
    an erasure that clears the touch's leaves none behind. Replies stored before this migration keep
    waiting with no key: nothing says which dialogue they were in but the journal.
    """
    _run(
        db,
        """
ALTER TABLE chat_replies ADD COLUMN conversation TEXT;
CREATE INDEX chat_replies_waiting ON chat_replies (source, conversation, at)
    WHERE touch_id IS NULL AND conversation IS NOT NULL
""",
    )


@migrations()
def m018_webhook_cursors(db: Database) -> None:
    """How far each outgoing webhook's endpoint has been sent, per feed (``registration``,
    ``lead_change``): one cursor for all of them, in ``meta``, stayed put while no webhook was
    configured, so a webhook added after that spell was sent all of it. An endpoint with deliveries
    queued before takes the old cursors, so it goes on where it was; one that never had any starts
    at the newest row when it is next collected (storage/webhook_deliveries.py).
    """
    _run(
        db,
        """
CREATE TABLE webhook_cursors (
    endpoint TEXT NOT NULL,
    feed TEXT NOT NULL,
    last_id INTEGER NOT NULL,
    PRIMARY KEY (endpoint, feed)
) WITHOUT ROWID;
INSERT INTO webhook_cursors (endpoint, feed, last_id)
    SELECT DISTINCT d.endpoint, 'registration', CAST(m.value AS INTEGER)
    FROM webhook_deliveries d JOIN meta m ON m.key = 'webhooks_out.registration_id';
INSERT INTO webhook_cursors (endpoint, feed, last_id)
    SELECT DISTINCT d.endpoint, 'lead_change', CAST(m.value AS INTEGER)
    FROM webhook_deliveries d JOIN meta m ON m.key = 'webhooks_out.lead_change_id';
DELETE FROM meta WHERE key IN ('webhooks_out.registration_id', 'webhooks_out.lead_change_id')
""",
    )


@migrations()
def m019_usernames_search_only(db: Database) -> None:
    """Usernames stored before they became search-only (storage/identifiers.SEARCH_ONLY) are so too.

    A Telegram or WhatsApp username passes from one person to another; new ones are stored with
    ``valid = 0`` and never matched. Those already stored matched nothing new either (a new event's
    username is never looked up), but they still read as match keys on cards and in the block list.
    """
    _run(db, "UPDATE identifiers SET valid = 0 WHERE kind IN ('telegram_username', 'whatsapp_username')")


@migrations()
def m020_erased_returned_reasons(db: Database) -> None:
    """The reason typed when a lead went back to marketing goes with the person since this release
    (storage/erasure.py); people erased before it kept it, in the lead, its history and the webhooks
    to a CRM. Theirs goes now, as a forget today would take it."""
    _run(
        db,
        """
UPDATE leads SET returned_reason = NULL
    WHERE returned_reason IS NOT NULL
    AND contact_id IN (SELECT id FROM contacts WHERE erased_at IS NOT NULL);
UPDATE lead_changes SET old = NULL, new = NULL
    WHERE field = 'returned_reason' AND (old IS NOT NULL OR new IS NOT NULL)
    AND lead_id IN (SELECT l.id FROM leads l JOIN contacts c ON c.id = l.contact_id WHERE c.erased_at IS NOT NULL);
UPDATE webhook_deliveries SET payload = json_set(payload, '$.data.old', json('null'), '$.data.new', json('null'))
    WHERE json_valid(payload)
    AND json_extract(payload, '$.data.field') = 'returned_reason'
    AND json_extract(payload, '$.data.contact_id') IN (SELECT id FROM contacts WHERE erased_at IS NOT NULL)
""",
    )


@migrations()
def m021_call_lines(db: Database) -> None:
    """The office line a call came in on (Mango's ``line_number``), apart from the tracking number
    that brought it (``dct.number``, often a pool number shown to one site visitor at a time): a
    call-back goes out from the line. Calls stored before keep NULL and are called back from their
    tracking number, as they were (storage/calls.dial_target)."""
    _run(db, "ALTER TABLE touches ADD COLUMN line TEXT")


@migrations()
def m022_anonymous_refusals(db: Database) -> None:
    """``journal.anonymous``: a refusal that anyone could have caused (no token or signature at all,
    a wrong method or path, an address not allowed, a body too large or cut off), which says nothing
    about the source's provider, so source health does not count it as the source failing.

    Rows from before are marked by their status, and a 401 by its reason, as the refusals of a
    missing token, signature or key were worded then: ``missing …`` (the token, the bot webhook's
    secret header, Typeform, WhatsApp, Twilio, Zadarma, Mango, Mailgun, Postmark, Standard Webhooks),
    but for two providers that said it otherwise: VK's ``no 'secret' in the body: …``, and Webflow's
    unsigned request without its token, ``unsigned Webflow request (no x-webflow-signature): …;
    missing token: …`` (the same request with a wrong token ends ``; wrong token`` and still counts).
    """
    _run(
        db,
        """
ALTER TABLE journal ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 0;
UPDATE journal SET anonymous = 1 WHERE status = 'rejected'
    AND (http_status IN (403, 404, 405, 413) OR (http_status = 401
        AND (reason LIKE 'missing %' OR reason LIKE 'no ''secret'' in the body%'
            OR reason LIKE 'unsigned Webflow request (no %; missing token:%')))
""",
    )


@migrations()
def m023_unreachable_chats(db: Database) -> None:
    """Chats Telegram refused for good (the person blocked the bot or never started it, the bot is
    not in the group): no new card goes to them, and round robin passes them over, until an update
    comes from the chat again. A row per chat, a staff member's or the team chat."""
    _run(
        db,
        """
CREATE TABLE unreachable_chats (
    chat_id INTEGER PRIMARY KEY,
    since TEXT NOT NULL
)
""",
    )


@migrations()
def m024_given_at(db: Database) -> None:
    """When a touch was given to its assignee, for round robin's count of what each person was given
    today: a form held overnight is given at the next working minute, so counting by ``received_at``
    left out every card handed out at opening and the day's split came out uneven. Touches assigned
    before this migration are taken as given when they arrived, which is what was counted until now.
    The count's index (m014) moves to the new column, so a touch's write keeps its number of indexes.
    """
    _run(
        db,
        """
ALTER TABLE touches ADD COLUMN given_at TEXT;
UPDATE touches SET given_at = received_at WHERE assignee_id IS NOT NULL;
DROP INDEX touches_assignee_not_calls;
CREATE INDEX touches_given_not_calls ON touches (assignee_id, given_at, channel)
    WHERE assignee_id IS NOT NULL AND channel != 'call'
""",
    )


@migrations()
def m025_cost_keys(db: Database) -> None:
    """The message a cost was recorded from (``telegram:{chat}:{message}`` for the bot's ``/cost``),
    unique, so Telegram delivering the same update twice records the cost once, as a typed number
    is one touch however often it comes (bot/routers/lookup.py). Costs from the config, and those
    recorded before, have none."""
    _run(
        db,
        """
ALTER TABLE campaign_costs ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX campaign_costs_external_id ON campaign_costs (external_id) WHERE external_id IS NOT NULL
""",
    )


@migrations()
def m026_touch_requests(db: Database) -> None:
    """The raw requests that repeated a stored form, mail or manual entry (a provider's retry): each
    is a journal row of its own that makes no touch, so ``touches.journal_id`` cannot name it, yet it
    names the person as the first did (a number spelled as none of their identifiers has it, say).
    Erasure and ``subject-export`` find it through this link (storage/subjects.py). Only a repeat
    writes a row; retries stored before this migration are found by their text."""
    _run(
        db,
        """
CREATE TABLE touch_requests (
    touch_id INTEGER NOT NULL REFERENCES touches (id),
    journal_id INTEGER NOT NULL REFERENCES journal (id),
    PRIMARY KEY (touch_id, journal_id)
) WITHOUT ROWID
""",
    )


@migrations()
def m027_chat_moves(db: Database) -> None:
    """Groups Telegram upgraded to supergroups, each with its new chat id (the outbox learns it from a
    400 ``migrate_to_chat_id``): the team chat is still the config's old id, so the bot and the rules
    that pick a chat follow it through this table until the config names the new one."""
    _run(
        db,
        """
CREATE TABLE chat_moves (
    old_chat INTEGER PRIMARY KEY,
    new_chat INTEGER NOT NULL,
    at TEXT NOT NULL
)
""",
    )


def _rebuild(db: Database, table: str, old: str, new: str) -> None:
    """Rebuild a table whose column definition changes in a way ``ALTER TABLE`` cannot make (SQLite's
    procedure, sqlite.org/lang_altertable.html "making other kinds of table schema changes"): a copy
    made from the table's own stored definition with ``old`` replaced by ``new``, so the constraints
    earlier migrations widened in place come along, every row copied under its id, and the table's
    indexes and triggers made again. Runs inside the migration's transaction, so it is all or none.
    """
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()
    if old not in sql:
        raise RuntimeError(f"{table}: the schema has no {old!r} to change")
    interim = f"{table}_rebuilt"
    _, _, columns = sql.partition("(")  # after CREATE TABLE <name>, however it was quoted
    others = [
        row[0]
        for row in db.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL",
            [table],
        ).fetchall()
    ]
    db.execute(f"CREATE TABLE {interim} (" + columns.replace(old, new, 1))
    db.execute(f"INSERT INTO {interim} SELECT * FROM {table}")
    db.execute(f"DROP TABLE {table}")
    db.execute(f"ALTER TABLE {interim} RENAME TO {table}")
    for statement in others:
        db.execute(statement)


@migrations()
def m028_blocklist_ids(db: Database) -> None:
    """Block-list ids are never given twice: the table had no ``AUTOINCREMENT``, so SQLite gave the
    newest entry's id again once it was unblocked, to the next number blocked. A CRM paging
    ``GET /api/blocked`` by ``after_id`` then never saw that entry, and its ``DELETE /api/blocked/{id}``
    of the entry it had listed took another number off the list. The rows keep their ids, and
    ``sqlite_sequence`` starts at the highest of them (an id freed before this migration may still
    come once more: nothing left in the file says it was given)."""
    _rebuild(db, "blocklist", "id INTEGER PRIMARY KEY,", "id INTEGER PRIMARY KEY AUTOINCREMENT,")


@migrations()
def m029_anonymous_bodies(db: Database) -> None:
    """A body refused before its token or signature was checked (one that could not be inflated, or
    broke off) is ``anonymous``, as m022 marked the other refusals anyone can send: replay passes
    such a 400 over (storage/journal.replayable_ids), since it would store the request unchecked.
    m022 left these rows unmarked; their reasons were always worded ``body could not be …``."""
    _run(
        db,
        """
UPDATE journal SET anonymous = 1
    WHERE status = 'rejected' AND http_status = 400 AND reason LIKE 'body could not be %'
""",
    )


@migrations()
def m030_missed_calls_index(db: Database) -> None:
    """The reports' missed calls read from an index of their own (storage/reports/loaders.py,
    ``load_missed_counts``): the inbound calls nobody answered, with every column that count reads,
    so a year's 150 000 of them are read from the index alone, not found among the year's 900 000
    inbound touches and each looked up in the table for its call-back. The columns fixed by the
    index's WHERE are in it too, so that SQLite reads nothing else. A partial index: SQLite keeps it
    up to date on every write of a touch, as any other, and it holds only the missed calls."""
    _run(
        db,
        """
CREATE INDEX touches_missed ON touches (
    occurred_at, channel, direction, dropped, blocked, answered, campaign, staff_id, assignee_id, hidden_caller,
    called_back_at
) WHERE channel = 'call' AND direction = 'in' AND dropped IS NULL AND blocked = 0 AND answered = 0
""",
    )


#: ``column IN ('word', 'word', 'word', ...)``: a list of three or more words, as the CHECKs above
#: spell the values a column may hold.
_WORD_LIST = re.compile(r"\b(\w+) IN \(('\w+'(?:, '\w+'){2,})\)")


def _or_chain(match: re.Match[str]) -> str:
    column, words = match[1], match[2].split(", ")
    return "(" + " OR ".join(f"{column} = {word}" for word in words) + ")"


@migrations()
def m031_checks_without_lists(db: Database) -> None:
    """Each CHECK's ``IN ('a', 'b', 'c')`` spelled ``(x = 'a' OR x = 'b' OR x = 'c')``, which holds for
    the same values, NULL included.

    SQLite checks a list of three or more by building a temporary table of it for every row written
    (3.40: 7.8 µs a row, against 1.9 with the ORs), and a webhook's journal row, touch and
    identifiers paid that four times over. Every stored row meets the respelled constraint, so it is
    rewritten in place (:func:`_widen`), like m010's.
    """
    tables = {
        name: sql
        for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        if sql and _WORD_LIST.search(sql)
    }
    checks = {match[0]: _or_chain(match) for sql in tables.values() for match in _WORD_LIST.finditer(sql)}
    if tables:
        _widen(db, tuple(tables), tuple(checks.items()))


def migrate(db: Database) -> None:
    """Apply whatever migrations this database has not seen; a no-op when it is current.

    A database that has seen none (a new file) takes them all in one transaction: the same
    migrations, in the same order, each still in its own savepoint, but one commit and one sync of
    the disk instead of one per migration (bench/idle.py: a new file's ~30 syncs were a tenth of
    ``leadline serve``'s start-up). Either the file gets the whole schema or it stays empty. A
    database upgraded from an earlier version still commits each migration as it is applied.
    tests/storage/test_schema_checks.py shows both ways give the same schema.
    """
    if migrations.applied(db):
        migrations.apply(db)
        return
    with db.atomic():
        migrations.apply(db)
