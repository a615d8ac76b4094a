"""What the bot needs from the PBX clients, as a type: calling a client back through the office line.

Capture's ``capture.dial.PbxDialer`` has these methods; the composition root hands it to the bot as
the ``dialer`` workflow data, so bot/ and capture/ never import each other.
"""

from __future__ import annotations

from typing import Literal, Protocol


class DialOutcome(Protocol):
    """What became of a press: ``taken`` (the PBX is ringing), ``refused`` (it will not ring, so the
    button is free again) or ``unconfirmed`` (the command went out and no answer came: it may still
    ring, so a second press would ring twice); ``reason`` says why for the last two."""

    @property
    def status(self) -> Literal["taken", "refused", "unconfirmed"]: ...

    @property
    def reason(self) -> str: ...


class Dialer(Protocol):
    def can_dial(self, source: str) -> bool:
        """Whether calls of this source can be called back (its provider can, its keys are set)."""

    def rings(self, source: str, extension: str | None, phone: str | None) -> str | None:
        """What ``source``'s PBX rings first of a staff member's extension and own number (E.164);
        None when it can ring neither (Mango and Binotel ring extensions only)."""

    async def dial(self, source: str, staff: str, client: str, line: str | None) -> DialOutcome:
        """Ring ``staff`` (an extension, or a number in E.164), then ``client``, through ``source``'s
        PBX, from ``line`` when known."""
