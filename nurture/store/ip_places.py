"""Where a visit comes from: its IP address as kept (truncated unless configured otherwise)
and, with an IP database configured, its country, city and network organisation."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from nurture.store.tracking import Place

PlaceFinder = Callable[[str], Place]
"""The place of a full IP address (the database is asked with the whole address; only the
kept form of it is stored)."""

IPV6_KEPT_BITS = 48
"""An IPv6 address keeps its routing prefix (/48, a site), as an IPv4 address keeps its /24."""


def kept_ip(address: str, *, keep_full_ip: bool = False) -> str | None:
    """``203.0.113.7`` as kept: ``203.0.113.0`` (IPv6: its /48); None when it is no address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if keep_full_ip:
        return str(ip)
    bits = 24 if ip.version == 4 else IPV6_KEPT_BITS
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False).network_address)


def without_database(keep_full_ip: bool = False) -> PlaceFinder:
    """No IP database: a visit's place is its kept address only."""

    def find(address: str) -> Place:
        return Place(ip=kept_ip(address, keep_full_ip=keep_full_ip))

    return find
