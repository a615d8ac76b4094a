"""Checks any source may add to its provider's own: a shared ``token`` and ``allow_ips``.

Some providers sign nothing, and a token is all that guards them; others sign too little (Zadarma
signs three fields of a call, Mailgun only a timestamp and a one-time token), so a source may ask
for a token beside the signature, and for requests from known addresses only.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from capture.providers.base import Forbidden, MissingCredentials, Provider, RawRequest, Unauthorized
from leadline.config import SourceConfig
from storage.given_secrets import same_secret

TOKEN_HEADER = "X-Leadline-Token"
FORWARDED_FOR = "X-Forwarded-For"

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def check_token(raw: RawRequest, source: SourceConfig) -> None:
    """The source's ``token``, sent as ``?token=`` or ``X-Leadline-Token``, compared in constant time."""
    expected = source.secret_value("token")
    given = raw.headers.get(TOKEN_HEADER) or raw.query.get("token") or ""
    if not given:
        raise MissingCredentials(
            f"missing token: send it as the 'token' query parameter or the {TOKEN_HEADER} header"
        )
    if not same_secret(given, expected):
        raise Unauthorized("wrong token")


def check_access(
    raw: RawRequest, source: SourceConfig, provider: Provider, trusted_proxies: Sequence[Network]
) -> bool:
    """``allow_ips`` (403), then ``token`` (401), before the provider's own check; True when the
    request passed the source's token, so whatever the provider's check finds, it is the provider's.

    The address comes first: a request from elsewhere learns nothing about the token.
    """
    if source.allow_ips:
        client = client_address(raw, trusted_proxies)
        if client is None:
            raise Forbidden(
                "the client's address is unknown, and this source takes requests only from allow_ips"
            )
        if not _within(client, source.allow_ips):
            raise Forbidden(
                f"requests from {client} are not taken here: the address is not in the source's allow_ips"
            )
    if source.token is not None and not getattr(provider, "verifies_token", False):
        check_token(raw, source)
        return True
    return False


def client_address(raw: RawRequest, trusted_proxies: Sequence[Network]) -> Address | None:
    """The address that sent the request: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies it is the right-most ``X-Forwarded-For`` entry that is not one of them:
    each proxy appends the address it was reached from, so everything left of that entry was
    written by the client and proves nothing. A peer that is no trusted proxy is the client, and
    its ``X-Forwarded-For`` is ignored whatever it says.
    """
    peer = _address(raw.remote)
    if peer is None or not _within(peer, trusted_proxies):
        return peer
    client = peer
    for value in reversed(raw.headers.getall(FORWARDED_FOR, [])):
        for entry in reversed(value.split(",")):
            if not entry.strip():
                continue
            hop = _address(entry)
            if hop is None:
                raise Forbidden(
                    f"{FORWARDED_FOR} entry {entry.strip()[:64]!r} from a trusted proxy is not an IP address"
                )
            client = hop
            if not _within(hop, trusted_proxies):
                return client
    return client


def _address(text: str | None) -> Address | None:
    """An address as peers and proxies write it: bare, ``[v6]:port`` or ``v4:port``; v4-mapped v6 as v4."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: Sequence[Network]) -> bool:
    # An IPv4 address is in no IPv6 network and the other way round: ``in`` says False, never raises.
    return any(address in network for network in networks)
