"""The embedded default as a new user runs it: ``nurture up`` in one process, the other
commands against it from another, exactly as the README says."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nurture.domain.stages import STAGES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "starter.py"), *args],
            cwd=self.cwd,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def start_up(data_dir: Path, ports: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "starter.py"),
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(ports["grpc"]),
            "--ui-port",
            str(ports["ui"]),
            "--sendgrid-port",
            str(ports["sendgrid"]),
            "--http-port",
            str(ports["http"]),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "NURTURE_LOG_FORMAT": "json",
            "NURTURE_METRICS_PORT": str(ports.get("metrics", "off")),
        },
    )
    deadline = time.monotonic() + 60
    while "Nurture is up" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"nurture up did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def scrape(url: str) -> dict[str, float]:
    """Prometheus text: each metric's value summed over its series, by name and by name with
    the labels a test asks for (``name{category="handoff",status="sent"}``)."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name, _, labels = name_labels.partition("{")
        found[name] = found.get(name, 0.0) + float(value)
        pairs = dict(pair.split("=", 1) for pair in labels.rstrip("}").split(",") if "=" in pair)
        if "category" in pairs and "status" in pairs:
            key = f"{name}{{category={pairs['category']},status={pairs['status']}}}"
            found[key] = found.get(key, 0.0) + float(value)
    return found


def stop(process: subprocess.Popen[bytes], signum: int = signal.SIGINT) -> int:
    process.send_signal(signum)
    return process.wait(timeout=30)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[tuple[Cli, Path, dict[str, int]]]:
    ports = {
        "grpc": free_port(),
        "ui": free_port(),
        "sendgrid": free_port(),
        "http": free_port(),
        "metrics": free_port(),
    }
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['grpc']}", "COLUMNS": "200"}
    yield Cli(env, tmp_path), tmp_path / "data", ports


def test_nurture_up_then_leads_events_actions_audit_and_simulate(
    workspace: tuple[Cli, Path, dict[str, int]], tmp_path: Path
) -> None:
    cli, data_dir, ports = workspace
    log = tmp_path / "up.log"
    up = start_up(data_dir, ports, log)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['ui']}/", timeout=10) as page:
            assert page.status == 200  # the Temporal Web UI

        http = f"http://127.0.0.1:{ports['http']}"
        with urllib.request.urlopen(f"{http}/healthz", timeout=10) as page:
            assert json.loads(page.read()) == {"status": "ok"}

        # The demo website, linked by the banner, carries the key of the site `up` made for it.
        assert f"Demo site     {http}/demo/" in log.read_text()
        (demo,) = json.loads(cli("sites", "list", "--json").stdout)
        assert demo["name"] == "demo"
        assert demo["origins"] == [
            f"http://127.0.0.1:{ports['http']}",
            f"http://localhost:{ports['http']}",
        ]
        with urllib.request.urlopen(f"{http}/demo/", timeout=10) as page:
            assert f'src="{http}/t.js" data-site="{demo["site_key"]}"' in page.read().decode()

        added = cli("lead", "add", "examples/leads.jsonl")
        assert added.returncode == 1, added.stderr
        assert "4 of 5 lines applied" in added.stdout
        assert "line 5: email: not a valid email address" in added.stderr
        rejected = [
            json.loads(line)
            for line in (tmp_path / "examples/leads.jsonl.rejects.jsonl").read_text().splitlines()
        ]
        assert [r["line"] for r in rejected] == [5]

        events = cli("event", "examples/events.jsonl", "--json")
        assert events.returncode == 1
        report = json.loads(events.stdout)
        assert (report["applied"], report["rejected"]) == (9, 3)
        assert [e["line"] for e in report["errors"]] == [10, 11, 12]
        assert "unknown event type 'teleport'" in report["errors"][0]["reason"]

        from_stdin = cli(
            "event", "-", "--json", stdin='{"lead_id": "grace", "type": "form_fill"}\n'
        )
        assert from_stdin.returncode == 0 and json.loads(from_stdin.stdout)["applied"] == 1

        time.sleep(1)
        ada = json.loads(cli("show", "ada", "--json").stdout)
        assert ada["stage"] == "assigned" and ada["owner"] == "alice"
        assert ada["handoff"]["story"]["campaign"] == "webinar-q4"
        assert "Why this score" in cli("show", "ada").stdout

        # `up` pointed the stand-in's signed Event Webhook at our HTTP service: an event about
        # the handoff alert travels signed and is verified with the key fetched from it.
        sendgrid = f"http://127.0.0.1:{ports['sendgrid']}"
        query = urllib.parse.urlencode({"query": "unique_args['lead_id']=\"ada\"", "limit": 5})
        listing = urllib.request.Request(
            f"{sendgrid}/v3/messages?{query}", headers={"Authorization": "Bearer SG.x"}
        )
        with urllib.request.urlopen(listing, timeout=10) as answer:
            (alert, *_) = json.loads(answer.read())["messages"]
        emit = urllib.request.Request(
            f"{sendgrid}/_standin/messages/{alert['msg_id'].split('.')[0]}/events",
            data=json.dumps([{"event": "delivered"}]).encode(),
            headers={
                "Content-Type": "application/json",
                # the stand-in's controls need the token `up` keeps in the data dir (finding 19)
                "X-Standin-Token": (data_dir / "sendgrid-standin.token").read_text().strip(),
            },
        )
        with urllib.request.urlopen(emit, timeout=10) as answer:
            delivery = json.loads(answer.read())
        assert delivery["status"] == 200, delivery
        assert json.loads(delivery["response_body"])["recorded"] == 1

        # The in-process worker's metrics, as Prometheus scrapes them: the SDK's and ours,
        # moved by what just happened (ada handed off, her rep alerted, events applied).
        metrics = f"http://127.0.0.1:{ports['metrics']}/metrics"
        assert f"Metrics       {metrics}" in log.read_text()
        series = scrape(metrics)
        assert series["nurture_handoffs_total"] >= 1
        assert series["nurture_events_total"] >= 9
        assert series['nurture_emails_sent_total{category="handoff",status="sent"}'] >= 1
        assert series.get("nurture_sla_misses_total", 0) == 0  # a counter shows once it moves
        assert series["nurture_touches_held"] == 0
        assert series["nurture_rules_info"] == 1
        # Every fact the leads queued for the read model is written (once their last
        # writes are done): no backlog.
        assert series["nurture_facts_queued_total"] >= 9
        settled = time.monotonic() + 10
        while series["nurture_facts_written_total"] < series["nurture_facts_queued_total"]:
            assert time.monotonic() < settled, "the read model never caught up"
            time.sleep(0.2)
            series = scrape(metrics)
        assert series["nurture_facts_written_total"] == series["nurture_facts_queued_total"]
        assert series["temporal_workflow_task_execution_latency_count"] > 0  # SDK
        assert series["temporal_sticky_cache_size"] >= 1

        refused = cli("reject", "ada", "--rep", "bob", "--reason", "not mine")
        assert refused.returncode == 1
        assert "rep 'bob' does not own this lead" in refused.stderr
        assert cli("accept", "ada", "--rep", "alice").returncode == 0
        won = cli("outcome", "ada", "--rep", "alice", "won", "--amount", "25000", "--json")
        assert json.loads(won.stdout)["stage"] == "won"
        unknown = cli("show", "nobody")
        assert unknown.returncode == 1 and "no lead 'nobody'" in unknown.stderr

        simulated = cli("simulate", "--leads", "200", "--seed", "3", "--json")
        assert simulated.returncode == 0, simulated.stderr[-2000:]
        summary = json.loads(simulated.stdout)
        assert sum(summary["per_stage"].values()) == 200
        assert summary["handed_off"] > 0 and summary["rejected"] > 0 and summary["won"] > 0

        audit = cli("audit", "--json")
        assert audit.returncode == 0, audit.stdout
        audited = json.loads(audit.stdout)
        assert audited["ok"] and audited["leads"] == 205  # 4 added + "newcomer" + 200
        assert set(audited["per_stage"]) <= set(STAGES)
    finally:
        status = stop(up)
    assert status == 0, log.read_text()[-3000:]
    with socket.socket() as probe:  # the dev server is gone with it
        assert probe.connect_ex(("127.0.0.1", ports["grpc"])) != 0

    again = start_up(data_dir, ports, tmp_path / "up-again.log")  # leads survive a restart
    try:
        shown = cli("show", "ada", "--json")
        assert shown.returncode == 0, shown.stderr
        ada = json.loads(shown.stdout)
        assert ada["stage"] == "won" and ada["outcome"]["amount"] == 25000
    finally:
        assert stop(again, signal.SIGTERM) == 0  # what a service manager sends


def test_up_explains_a_busy_port(workspace: tuple[Cli, Path, dict[str, int]]) -> None:
    cli, data_dir, ports = workspace
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["grpc"]))
        blocker.listen()
        result = cli("up", "--data-dir", str(data_dir), "--port", str(ports["grpc"]), timeout=30)
    assert result.returncode == 2
    assert f"port {ports['grpc']}" in result.stderr and "--port" in result.stderr


def test_worker_refuses_to_start_with_a_broken_template(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "tests/fixtures/templates", templates)
    touch = templates / "t/touch.html"
    touch.write_text(touch.read_text().replace("{{ cycle }}", "{{ lead.favourite_colour }}"))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "worker.py"),
            "--config",
            str(ROOT / "tests/fixtures/rules"),
            "--templates",
            str(templates),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"},
    )
    assert result.returncode == 2
    assert "templates/t/touch.html:3: undefined variable" in result.stderr
    assert "favourite_colour" in result.stderr


def test_templates_check_names_file_line_and_variable(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    step = templates / "smb/03_three_tips.html"
    step.write_text(step.read_text().replace("{{ lead.first_name", "{{ lead.nickname", 1))
    env = {**os.environ, "COLUMNS": "200"}
    ok = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "templates", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert ok.returncode == 0 and "cadence steps render" in ok.stdout
    broken = subprocess.run(
        [
            sys.executable,
            str(ROOT / "starter.py"),
            "templates",
            "check",
            "--templates",
            str(templates),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert broken.returncode == 2
    assert "templates/smb/03_three_tips.html:" in broken.stderr
    assert "undefined variable" in broken.stderr and "nickname" in broken.stderr
