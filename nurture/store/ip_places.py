"""Where a visit comes from: its IP address as kept (truncated unless configured otherwise)
and, with an IP database configured, its country, city and network organisation.

The databases are MaxMind DB files (``.mmdb``): GeoLite2/GeoIP2 City or Country, GeoLite2
ASN, GeoIP2 ISP, Enterprise or any company database in that format. Each is read the same
way: every field below is looked for in every record, and a record without it is fine. Up to
two files are configured (``ip_database``, ``asn_database`` in ``config/tracking.yaml``); the
first one answering a field wins, and a company's own name beats its network's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import maxminddb
import structlog
from maxminddb import InvalidDatabaseError

from nurture.store.tracking import Place

log = structlog.get_logger(__name__)

PlaceFinder = Callable[[str], Place]
"""The place of a full IP address (the database is asked with the whole address; only the
kept form of it is stored)."""

IPV6_KEPT_BITS = 48
"""An IPv6 address keeps its routing prefix (/48, a site), as an IPv4 address keeps its /24."""

FieldPath = tuple[str, ...]
COUNTRY_FIELDS: tuple[FieldPath, ...] = (
    ("country", "iso_code"),
    ("registered_country", "iso_code"),
)
"""The country as its ISO 3166 code (``DE``): the same in every language and database
edition, so scoring rules and segments can test it; where the network is registered when the
database does not place the address itself."""
CITY_FIELDS: tuple[FieldPath, ...] = (("city", "names", "en"),)
ORGANISATION_FIELDS: tuple[FieldPath, ...] = (
    ("traits", "organization"),  # GeoIP2 Enterprise: the company using the address
    ("organization",),  # GeoIP2 ISP, company databases
    ("traits", "isp"),
    ("isp",),
    ("traits", "autonomous_system_organization"),
    ("autonomous_system_organization",),  # GeoLite2 ASN: the network's owner
)
"""Most specific first: the company using the address, then its provider, then the owner of
its network."""
LONGEST = {"country": 64, "city": 200, "organisation": 200}
"""The visitor table's column sizes: a database's longer value is cut, never refused."""


class IpDatabaseError(ValueError):
    """A configured IP database cannot be read; the message names the setting and the file."""


class IpDatabaseSettings(Protocol):
    """What :func:`from_settings` reads (``config/tracking.yaml``'s ``TrackingSettings``)."""

    @property
    def ip_database(self) -> Path | None: ...

    @property
    def asn_database(self) -> Path | None: ...

    @property
    def keep_full_ip(self) -> bool: ...


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


def open_database(path: Path, setting: str) -> maxminddb.Reader:
    """The database at ``path``, memory-mapped; :class:`IpDatabaseError` naming ``setting``
    and the file when it is missing, unreadable or not a MaxMind DB."""
    try:
        return maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    except FileNotFoundError:
        raise IpDatabaseError(
            f"{setting}: {path} does not exist (a MaxMind DB file such as "
            "GeoLite2-City.mmdb; a relative path is read from the config dir)"
        ) from None
    except InvalidDatabaseError:
        raise IpDatabaseError(
            f"{setting}: {path} is not a MaxMind DB file (.mmdb, e.g. GeoLite2-City.mmdb)"
        ) from None
    except OSError as exc:
        raise IpDatabaseError(f"{setting}: {path} cannot be read: {exc.strerror}") from None


class MaxMindPlaces:
    """A :data:`PlaceFinder` over one or more open MaxMind databases."""

    def __init__(self, readers: Sequence[maxminddb.Reader], keep_full_ip: bool = False) -> None:
        self.readers = list(readers)
        self.keep_full_ip = keep_full_ip

    def __call__(self, address: str) -> Place:
        kept = kept_ip(address, keep_full_ip=self.keep_full_ip)
        if kept is None:
            return Place()
        records = [record for reader in self.readers if (record := _record(reader, address))]
        return Place(
            ip=kept,
            country=_first(records, COUNTRY_FIELDS, LONGEST["country"]),
            city=_first(records, CITY_FIELDS, LONGEST["city"]),
            organisation=_first(records, ORGANISATION_FIELDS, LONGEST["organisation"]),
        )

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def from_settings(settings: IpDatabaseSettings) -> PlaceFinder:
    """The place finder ``settings`` configure: the IP databases opened once (memory-mapped;
    close them with :meth:`MaxMindPlaces.close`), or, with none, the kept address only.
    :class:`IpDatabaseError` when a configured file cannot be used."""
    configured = [
        (setting, path)
        for setting in ("ip_database", "asn_database")
        if (path := getattr(settings, setting)) is not None
    ]
    if not configured:
        return without_database(settings.keep_full_ip)
    readers: list[maxminddb.Reader] = []
    try:
        for setting, path in configured:
            readers.append(open_database(path, setting))
    except IpDatabaseError:
        for reader in readers:
            reader.close()
        raise
    return MaxMindPlaces(readers, settings.keep_full_ip)


def _record(reader: maxminddb.Reader, address: str) -> dict[str, Any] | None:
    try:
        record = reader.get(address)
    except ValueError:  # an IPv6 address asked of an IPv4-only database
        return None
    except InvalidDatabaseError as exc:  # a damaged file: the visit counts, without a place
        log.warning("IP database could not be read", error=str(exc))
        return None
    return record if isinstance(record, dict) else None


def _first(
    records: Sequence[dict[str, Any]], fields: Sequence[FieldPath], longest: int
) -> str | None:
    """The first of ``fields`` any record holds as non-empty text (each field in turn across
    every record, so a more specific field in a later database beats a vaguer one)."""
    for field in fields:
        for record in records:
            value: Any = record
            for key in field:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str) and value.strip():
                return value.strip()[:longest]
    return None
