"""Structured logs: JSON with the lead's ids, and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import structlog
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from nurture.client.temporal import TemporalSettings
from nurture.config.settings import MailerSettings
from nurture.runtime.logging import configure_logging
from tests.recorded_rules import only_recorded_rules
from tests.test_query_ahead_of_task import UNEXPLAINED, cut_history
from workflows.lead import LeadWorkflow


@pytest.fixture(autouse=True)
def _restore(restore_logging: None) -> None:
    """Each test here configures logging its own way."""


def test_json_logs_carry_bound_ids_and_never_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json_logs=True)
    log = structlog.get_logger("test").bind(lead_id="ada", workflow_id="lead-ada")
    secret = "SG.abcdefghijkl.mnopqrstuvwxyz0123"
    log.info("sending", api_key=secret, detail=f"client built with {secret}")
    logging.getLogger("temporalio.workflow").warning("Authorization: Bearer %s", "tok-9f8e7d")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["lead_id"] == "ada" and lines[0]["workflow_id"] == "lead-ada"
    assert lines[0]["api_key"] == "***"
    assert secret not in json.dumps(lines)
    assert lines[1]["logger"] == "temporalio.workflow"  # SDK records share the pipeline
    assert "tok-9f8e7d" not in lines[1]["event"] and "Bearer ***" in lines[1]["event"]


async def test_a_failed_activation_is_logged_from_inside_the_sandbox_with_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The SDK logs a workflow's failed activation from inside the sandbox, with the
    exception: the record reaches the JSON log whole, the traceback as text (a lead refusing
    to decide ahead of its workflow task, as a worker meets it after a restart)."""
    configure_logging(level="INFO", json_logs=True)
    with only_recorded_rules():
        replayer = Replayer(workflows=[LeadWorkflow], data_converter=pydantic_data_converter)
        await replayer.replay_workflow(cut_history(UNEXPLAINED, 83), raise_on_replay_failure=False)
    err = capsys.readouterr().err
    assert "Logging error" not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failed = [line for line in lines if line["event"].startswith("Failed activation on workflow")]
    assert len(failed) == 1, lines
    assert "AheadOfWorkflowTask" in failed[0]["exception"], failed[0]
    assert failed[0]["temporal_workflow"]["workflow_type"] == "LeadWorkflow"


def test_settings_objects_hide_their_keys_when_printed() -> None:
    assert "SG.real-key" not in repr(MailerSettings(api_key="SG.real-key", base_url="http://x"))
    shown = repr(TemporalSettings(api_key="cloud-api-key"))
    assert "cloud-api-key" not in shown and "***" in shown


def test_half_set_mtls_settings_are_refused_with_the_missing_variable(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("not a real key")
    with pytest.raises(ValueError, match="TEMPORAL_TLS_KEY is set but TEMPORAL_TLS_CERT is not"):
        TemporalSettings(tls_key=key).tls_config()
    assert "tls=False" in repr(TemporalSettings(tls_key=key))
