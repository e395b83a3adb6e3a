"""Temporal connection settings through the SDK's own configuration (``temporalio.envconfig``,
issue 18): a TOML profile and the standard variables, as the ``temporal`` CLI reads them, with
our earlier TLS variables still read for this release; a bad setting is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from nurture.client.temporal import TemporalSettings, connect

PROFILES = """
[profile.default]
address = "{address}"
namespace = "default"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "profile-api-key"

[profile.cloud.grpc_meta]
x-team = "growth"
"""


@pytest.fixture
def profiles(tmp_path: Path, dev_env: WorkflowEnvironment) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(PROFILES.format(address=dev_env.client.service_client.config.target_host))
    return path


async def test_a_toml_profile_connects_and_variables_override_it(
    profiles: Path, dev_env: WorkflowEnvironment
) -> None:
    settings = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(profiles)})
    client = await connect(settings, dev_env.client.data_converter)
    answer = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    assert answer.namespace_info.name == "default"

    cloud = TemporalSettings.from_env(
        {"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_PROFILE": "cloud"}
    )
    assert (cloud.address, cloud.namespace, cloud.api_key) == (
        "ns.acct.tmprl.cloud:7233",
        "ns.acct",
        "profile-api-key",
    )
    assert cloud.tls_config() is True  # an API key means TLS
    assert cloud.rpc_metadata() == {"x-team": "growth"}
    assert "profile-api-key" not in repr(cloud)
    overridden = TemporalSettings.from_env(
        {"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_ADDRESS": "elsewhere:7233"}
    )
    assert overridden.address == "elsewhere:7233"
    assert TemporalSettings.from_env({}).address == "127.0.0.1:7233"  # nothing set: local


def test_the_earlier_tls_variables_still_work_and_say_their_new_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_bytes(f"PEM {path.name}".encode())
    old = TemporalSettings.from_env(
        {"TEMPORAL_TLS_CA": str(ca), "TEMPORAL_TLS_CERT": str(cert), "TEMPORAL_TLS_KEY": str(key)}
    )
    new = TemporalSettings.from_env(
        {
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca),
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(key),
        }
    )
    for settings in (old, new):
        tls = settings.tls_config()
        assert isinstance(tls, TLSConfig)
        assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key) == (
            b"PEM ca.pem",
            b"PEM client.pem",
            b"PEM client.key",
        )
    warned = capsys.readouterr()
    assert "TEMPORAL_TLS_SERVER_CA_CERT_PATH" in warned.out + warned.err


@pytest.mark.parametrize(
    ("env", "refusal"),
    [
        (
            {"TEMPORAL_TLS_KEY": "k.pem"},
            "TEMPORAL_TLS_KEY is set but TEMPORAL_TLS_CLIENT_CERT_PATH",
        ),
        ({"TEMPORAL_TLS_CLIENT_CERT_PATH": "c.pem"}, "but TEMPORAL_TLS_CLIENT_KEY_PATH is not"),
        ({"TEMPORAL_CONFIG_FILE": "/nowhere/temporal.toml"}, "TEMPORAL_CONFIG_FILE: no such file"),
    ],
)
def test_a_bad_setting_is_refused_by_name(env: dict[str, str], refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        TemporalSettings.from_env(env)


def test_a_missing_profile_is_refused_by_name(profiles: Path) -> None:
    env = {"TEMPORAL_CONFIG_FILE": str(profiles), "TEMPORAL_PROFILE": "staging"}
    with pytest.raises(ValueError, match="Profile 'staging' not found"):
        TemporalSettings.from_env(env)
