"""Nudges: ask people to register a touch, call a missed call back or follow a lead up, and tell
their managers when they do not.

Nothing here keeps a timer. Every sweep derives what is due from the rows (touches,
registrations, leads, nudges), so a restart, a clock jump or an hour with the process down neither
loses a nudge nor repeats one. A nudge row is unique per ``(kind, subject, level)``; what it owes
to each chat is a delivery unique per ``(nudge, chat, round)``; and a delivery, its row and the
outbox message that carries it are written in one transaction.

A sweep is two steps, so the heavy reading never holds the single writer:
:func:`~storage.nudges.due.due_nudges` (a read) lists what is due, and
:func:`~storage.nudges.record.plan_and_record` (a write) closes what has been resolved, re-checks
every item it records, keeps to one message per chat per batch window, and queues one message per
chat listing the cards (:mod:`~storage.nudges.cards` gathers what they show). SLAs are working
minutes; the cut-off moment for each SLA is computed once per sweep
(:func:`~storage.nudges.rules.working_cutoff`), so the queries compare stored times with one value
instead of computing a deadline per row. Who is asked is :mod:`~storage.nudges.people`'s job.

Subjects: ``touch:<id>`` (register, callback), ``lead:<id>:<follow_up_on>:<owner_id>`` (follow_up:
a new date or a new owner is a new question), ``lead:<id>:<updated_at>`` (stale: a change ends it).
Level 0 goes to whoever handled the touch (or owns the lead), level 1 to the managers, naming who was asked.

The button actions (:mod:`~storage.nudges.actions`: ``mark_called_back``, ``cant_reach``,
``snooze``, ``follow_up_done``, ``follow_up_later``, ``follow_up_lost``) act on a whole card: every
open nudge of the same kind about the same contact (or lead).
"""
