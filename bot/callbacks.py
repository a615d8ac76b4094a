"""Callback data of every inline button, as aiogram ``CallbackData`` factories.

Telegram returns at most 64 bytes of ``callback_data``, so buttons carry ids, never names or
numbers; the handler reads the current state from the database, which also makes an old button on
an old card safe to press.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class CardCB(CallbackData, prefix="t"):
    """A registration card: ``t`` the touch it was drawn for, ``c`` the contact it showed then; ``v`` of
    ``edit`` the field's index in :func:`bot.cards.form_fields` (or ``amount``, ``follow_up``)."""

    act: str
    t: int
    c: int
    v: str = ""


class ArrivalCB(CallbackData, prefix="r"):
    """A card on arrival (drawn by ``bot/arrival_texts.py``), drawn for touch ``t``: ``called`` and
    ``cant`` on a missed call (through that touch's call-back nudge), ``give`` (a manager picks
    someone), ``to`` (give it to staff member ``v``), ``back`` (the card's own buttons again)."""

    act: str
    t: int
    v: int = 0


class LeadCB(CallbackData, prefix="l"):
    act: str
    lead: int
    v: str = ""


class AccessCB(CallbackData, prefix="a"):
    decision: str
    req: int


class PageCB(CallbackData, prefix="p"):
    """A page of a list: ``kind`` unreg / missed / leads, ``everyone`` for a manager's full list; ``go``
    ``n`` the items past the mark (``key``, ``id``: :class:`storage.lists.Mark`), ``p`` those before
    it, empty for the first page."""

    kind: str
    everyone: bool = False
    go: str = ""
    key: int = 0
    id: int = 0


class OpenCB(CallbackData, prefix="o"):
    """Open a card from a list: ``kind`` touch / lead / contact."""

    kind: str
    id: int


class MergeCB(CallbackData, prefix="m"):
    """``ask`` for the other contact, ``do`` merge b into a, ``undo`` merge ``a``, ``apart`` keep a and b
    apart (not the same person), ``no`` cancel."""

    act: str
    a: int
    b: int = 0


class NudgeCB(CallbackData, prefix="n"):
    """A nudge's buttons (drawn by ``bot/nudge_texts.py``): ``act`` called / cant / snooze / done /
    later / lost, and ``lostr`` for the reason the bot then asks for; ``v`` the act's value."""

    act: str
    nudge: int
    v: str = ""


class ForgetCB(CallbackData, prefix="f"):
    """/forget's question: ``do`` erase contact ``c``, ``no`` cancel."""

    act: str
    c: int


class BlockCB(CallbackData, prefix="b"):
    """/blocked's buttons: ``page`` turns to page ``page``, ``un`` takes entry ``id`` off the list
    (then redraws page ``page``)."""

    act: str
    page: int = 0
    id: int = 0


class ContactCB(CallbackData, prefix="c"):
    """A contact card's own buttons: ``dnc`` sets contact ``c``'s do-not-contact flag to ``v`` (1 or 0)."""

    act: str
    c: int
    v: int = 0


class DialCB(CallbackData, prefix="d"):
    """``📞 Call back`` under a missed call's card: ``t`` the touch whose contact is called back."""

    t: int
