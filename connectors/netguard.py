"""Where a connector may connect: public addresses only, unless the operator allows more.

A member's endpoint is resolved once, when its connector opens, and every address it resolves
to must be global. Private (RFC 1918, ULA), loopback, link-local (including cloud metadata at
169.254.169.254), shared (CGNAT), multicast, reserved, unspecified and documentation ranges are
refused, as are IPv4-mapped and NAT64 forms of them. The connector then connects to the
addresses it checked, never resolving the name again, so DNS rebinding cannot move it inside.
An operator allow-list of networks (`10.20.0.0/16`) or exact host names lets chosen internal
endpoints through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointRefused(Exception):
    """The endpoint is internal and not allowed: a permanent refusal, never retried."""


@dataclass(frozen=True, slots=True)
class AllowList:
    """Networks and host names an operator has allowed although they are not public."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, host: str, address: Address) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in n for n in self.networks)


def why_internal(address: Address) -> str | None:
    """The kind of non-public range `address` is in, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or _nat64(address)
        if embedded is not None:
            reason = why_internal(embedded)
            return f"{reason} (IPv4 inside IPv6)" if reason else None
    for attribute, reason in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def check(host: str, addresses: Iterable[str], allow: AllowList) -> list[str]:
    """The addresses, when every one may be connected to; raises `EndpointRefused` otherwise."""
    checked: list[str] = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = why_internal(address)
        if reason and not allow.allows(host, address):
            raise EndpointRefused(
                f"{host} resolves to {address}, a {reason} address; "
                "add it to the connectors' allow-list (CWN_CONNECT_ALLOW_INTERNAL) to permit it"
            )
        checked.append(str(address))
    if not checked:
        raise EndpointRefused(f"{host} resolves to no address")
    return checked


async def resolve(host: str, port: int, allow: AllowList) -> list[str]:
    """Resolve `host` once and check every address it has.

    A name that does not resolve raises OSError (worth retrying: DNS may be down); an internal
    address raises `EndpointRefused`.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(f"{host} cannot be resolved: {exc}") from None
    return check(host, dict.fromkeys(str(info[4][0]) for info in infos), allow)
