"""Tiny IP databases in the MaxMind format, written with ``mmdb-writer`` for the tests: a
City-like and an ASN-like database over documentation networks (and loopback, the address a
browser in the tests visits from), as GeoLite2 City and ASN lay out their records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

HOSTILE_ORGANISATION = "<script>window.pwned = 1</script>{{ 7*7 }} Ltd"
"""A network owner's name is whatever its registry was told: it must stay text."""


@dataclass(frozen=True)
class Network:
    cidr: str
    country: str | None
    city: str | None
    organisation: str | None


NETWORKS = (
    Network("203.0.113.0/24", "DE", "Berlin", "Acme GmbH"),
    Network("198.51.100.0/24", "FR", "Lyon", HOSTILE_ORGANISATION),
    Network("2001:db8:1::/48", "PT", "Lisbon", "Lisboa Dados SA"),
    Network("127.0.0.0/8", "NL", "Amsterdam", "Loopback Labs BV"),
    Network("192.0.2.0/24", None, None, None),  # known to the database, but placed nowhere
)


def city_record(network: Network) -> dict[str, Any]:
    """A GeoLite2 City record (or an empty-handed one: only a location's accuracy)."""
    record: dict[str, Any] = {"location": {"accuracy_radius": 100}}
    if network.country:
        record["country"] = {"iso_code": network.country, "geoname_id": 2921044}
    if network.city:
        record["city"] = {"geoname_id": 2950159, "names": {"en": network.city}}
    return record


def asn_record(network: Network) -> dict[str, Any]:
    record: dict[str, Any] = {"autonomous_system_number": 64500}
    if network.organisation:
        record["autonomous_system_organization"] = network.organisation
    return record


def write_database(path: Path, database_type: str, records: dict[str, dict[str, Any]]) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, record in records.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def write_city_and_asn(directory: Path) -> tuple[Path, Path]:
    """``GeoLite2-City.mmdb`` and ``GeoLite2-ASN.mmdb`` over :data:`NETWORKS` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    city = write_database(
        directory / "GeoLite2-City.mmdb",
        "GeoLite2-City",
        {n.cidr: city_record(n) for n in NETWORKS},
    )
    asn = write_database(
        directory / "GeoLite2-ASN.mmdb",
        "GeoLite2-ASN",
        {n.cidr: asn_record(n) for n in NETWORKS},
    )
    return city, asn
