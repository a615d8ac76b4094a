"""What the bot needs from the PBX clients, as a type: calling a client back through the office line.

Capture's ``capture.dial.PbxDialer`` has these methods; the composition root hands it to the bot as
the ``dialer`` workflow data, so bot/ and capture/ never import each other.
"""

from __future__ import annotations

from typing import Protocol


class Dialer(Protocol):
    def can_dial(self, source: str) -> bool:
        """Whether calls of this source can be called back (its provider can, its keys are set)."""

    def rings(self, source: str, extension: str | None, phone: str | None) -> str | None:
        """What ``source``'s PBX rings first of a staff member's extension and own number (E.164);
        None when it can ring neither (Mango and Binotel ring extensions only)."""

    async def dial(self, source: str, staff: str, client: str, line: str | None) -> str | None:
        """Ring ``staff`` (an extension, or a number in E.164), then ``client``, through ``source``'s
        PBX, from ``line`` when known. None when the PBX took the command; else its reason."""
