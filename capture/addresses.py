"""The business's own mail addresses, as the config names them.

A module of its own, not part of ``capture/mail.py``: the pipeline builds them at start-up, and
importing the mail parser (html2text, the stdlib's email package) would cost every command that
never reads a mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leadline.config import Config


@dataclass(frozen=True, slots=True)
class OurAddresses:
    """The business's own mail addresses, from the config; the pipeline builds them once.

    They are where mail is sent *to*, so mail sent *from* one of them is never a customer's: taken
    for the person, one address would merge every lead a site notifies of into one contact.
    """

    addresses: frozenset[str] = frozenset()
    #: Domains an SMTP source takes whole (``@leads.example.com``): nobody outside has an address there.
    domains: frozenset[str] = frozenset()
    #: Staff members' own addresses (``[[staff]] emails``): ours too, and their mail is no customer's
    #: touch unless it names one (a forward, a copy of their own correspondence).
    staff: frozenset[str] = frozenset()
    #: Staff members' own phones (``[[staff]] phone``, E.164): a signature's number in a staff member's
    #: mail, never a customer's.
    staff_phones: frozenset[str] = frozenset()

    @classmethod
    def build(cls, config: Config) -> OurAddresses:
        written = [a for c in config.campaigns for a in c.emails]
        for source in config.sources:
            if source.provider == "smtp":
                written += source.addresses
            elif source.provider == "imap" and source.username:
                written.append(source.username)  # the mailbox's login, when it is its address
        found = [_address_key(a) for a in written]
        return cls(
            frozenset(a for a in found if not a.startswith("@") and "@" in a),
            frozenset(a[1:] for a in found if a.startswith("@") and len(a) > 1),
            frozenset(_address_key(a) for person in config.staff for a in person.emails if "@" in a),
            frozenset(person.phone for person in config.staff if person.phone),
        )

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` is ours as the SMTP source would take it (itself, its plus-tagged
        form ``sales+site@`` for ``sales@``, or any address of a domain taken whole), or a staff
        member's."""
        if not isinstance(address, str) or "@" not in address:
            return False
        local, _, domain = _address_key(address).rpartition("@")
        base = local.split("+", 1)[0]
        return (
            f"{local}@{domain}" in self.addresses
            or f"{base}@{domain}" in self.addresses
            or domain in self.domains
            or self.of_staff(address)
        )

    def of_staff(self, address: str | None) -> bool:
        """Whether ``address`` is a staff member's own, as written in their ``emails``."""
        return bool(address) and _address_key(address or "") in self.staff


def _address_key(address: str) -> str:
    """An address as the config and a header may both write it: trimmed, unbracketed, lower-case."""
    return address.strip().strip("<>").strip().lower()
