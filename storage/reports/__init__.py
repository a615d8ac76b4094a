"""The numbers of DESIGN.md ("The numbers"), per period and per channel, campaign and staff member.

A report reads four kinds of facts for its period in a handful of queries (inbound touches folded
per contact, missed calls, the period's leads, its not-a-lead registrations) plus the costs, and
every figure is a plain function of those facts. The same functions give the total and each group,
so a group's figures are exactly what the report filtered to that group would say.

A year of a busy office is a million touches on some 200 000 contacts, and ``leadline report`` must
answer in seconds: the facts are folded once, by the channel, campaign and staff member as stored,
into plain maps and counts (no object per touch or contact), each group merges the folds under its
name, and the independent queries run on a second connection beside the longest one (see
:meth:`storage.reports.facts.Facts.load`).

The package by job: :mod:`~storage.reports.scope` (periods, filters, the config's rules),
:mod:`~storage.reports.clocks` (working minutes at speed), :mod:`~storage.reports.loaders` (the
queries), :mod:`~storage.reports.figures` (every figure of one group), :mod:`~storage.reports.facts`
(facts read once and cut into groups), :mod:`~storage.reports.goals` (the month's goals) and
:mod:`~storage.reports.report` (the whole report, and what the digest and the plan read).

Definitions that the design leaves open are fixed here, once:

* A period is whole local days in the configured time zone (a touch at 23:59 belongs to its day).
* Inbound touches exclude outbound calls, dropped events (auto-replies, spam rules) and touches
  from blocked numbers or addresses; blocked ones are counted apart, as are hidden callers, which
  are inbound touches without a contact.
* "Registered" counts a registration made at any time up to ``as_of`` (the report time), so a
  contact registered before the period counts as registered; the lag is measured only for contacts
  whose first registration came at or after their first touch in the period.
* A contact is new when it has no touch of any kind before the period.
* A missed call is an inbound call with ``answered = 0``; it is "not called back" when nobody
  answered a later call from the number or called it back (``touches.called_back_at``) by its
  call-back deadline, in working minutes. Hidden callers cannot be called back and are counted
  apart instead.
* Leads are the cohort created in the period, at the stage they are in now: of this month's
  100 leads, 20 were qualified and 2 won, whenever that happened. Goal progress instead counts
  what happened in the month (leads created, qualified, won).
* A lead's channel is that of its contact's first touch; its campaign is the lead's own.
* Costs belong to campaigns only, so they appear in the total and per campaign, not per channel or
  staff member.
"""
