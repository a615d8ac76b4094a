"""Which campaign a touch belongs to, in DESIGN.md's order of evidence.

The tracking number dialled beats the form's UTM tags, which beat what a chat ad names (a VK lead
form's id, an Avito item's id), which beats the address a mail was sent to, which beats the
source's default campaign: the more specific the evidence, the more it counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import TYPE_CHECKING

from storage.identifiers import email_key, phone

if TYPE_CHECKING:
    from leadline.config import CampaignConfig


@dataclass(frozen=True)
class CampaignIndex:
    by_number: Mapping[str, str] = field(default_factory=dict)
    by_utm_campaign: Mapping[str, str] = field(default_factory=dict)
    by_utm_source: Mapping[str, str] = field(default_factory=dict)
    by_email: Mapping[str, str] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    #: ``("vk_form", "3")``, ``("avito_item", "6000000001")`` → campaign.
    by_ref: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def build(cls, campaigns: Iterable[CampaignConfig], region: str) -> CampaignIndex:
        numbers: dict[str, str] = {}
        utm_campaign: dict[str, str] = {}
        utm_source: dict[str, str] = {}
        emails: dict[str, str] = {}
        names: set[str] = set()
        refs: dict[tuple[str, str], str] = {}
        for c in campaigns:
            names.add(c.name)
            refs.update({("vk_form", str(v).strip()): c.name for v in c.vk_forms})
            refs.update({("avito_item", str(v).strip()): c.name for v in c.avito_items})
            for raw in c.tracking_numbers:
                ident = phone(raw, region)
                numbers[ident.value if ident else raw] = c.name
            utm_campaign.update({v.strip().lower(): c.name for v in c.utm_campaign})
            utm_source.update({v.strip().lower(): c.name for v in c.utm_source})
            for raw in c.emails:
                key = email_key(raw)
                if key:
                    emails[key] = c.name
        return cls(numbers, utm_campaign, utm_source, emails, frozenset(names), refs)

    def attribute(
        self,
        *,
        region: str,
        tracking_number: str | None = None,
        utm: Mapping[str, str] | None = None,
        to_address: str | None = None,
        ref: tuple[str, str] | None = None,
        default: str | None = None,
    ) -> str | None:
        if tracking_number:
            ident = phone(tracking_number, region)
            found = self.by_number.get(ident.value if ident else tracking_number.strip())
            if found:
                return found
        utm = utm or {}
        found = self.by_utm_campaign.get(utm.get("utm_campaign", "").strip().lower())
        if found:
            return found
        found = self.by_utm_source.get(utm.get("utm_source", "").strip().lower())
        if found:
            return found
        if ref is not None and (found := self.by_ref.get((ref[0], ref[1].strip()))):
            return found
        if to_address:
            for _, address in getaddresses([to_address]):
                found = self._by_address(address)
                if found:
                    return found
        return default

    def _by_address(self, address: str) -> str | None:
        """The campaign's own address, else a plus tag naming a campaign (``leads+brand_msk@…``,
        Postmark's ``MailboxHash``), else the address without its tag."""
        key = email_key(address)
        if not key:
            return None
        if found := self.by_email.get(key):
            return found
        local, _, domain = key.rpartition("@")
        base, plus, tag = local.partition("+")
        if not plus:
            return None
        return campaign_named(tag, self.names) or self.by_email.get(f"{base}@{domain}")


def campaign_named(name: str, campaigns: Iterable[str]) -> str | None:
    """The campaign ``name`` means, spelt as the config spells it: people write a name in any letter
    case (an address's ``+Brand_MSK``, a CRM's ``"campaign"``, ``--campaign``, ``/cost``), and a campaign
    is counted under one spelling only. The exact spelling wins, should two differ only in case."""
    names = list(campaigns)
    if name in names:
        return name
    folded = name.strip().casefold()
    return next((known for known in names if known.casefold() == folded), None)
