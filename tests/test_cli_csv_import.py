"""`nurture lead add leads.csv` as a user runs it: the progress bar and the summary count the
same rows, and rejected rows come back as a CSV to fix and send again (finding 27)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent

# A header, five data rows (one spread over two lines by a quoted line break), a blank line.
LEADS_CSV = (
    "lead_id,email,first_name,address\r\n"
    'csv-{run}-1,ann@corp.example,Ann,"1 Main St\nSpringfield"\r\n'
    "csv-{run}-2,not-an-email,Bob,\r\n"
    "\r\n"
    "csv-{run}-3,cy@corp.example,Cy,\r\n"
    "csv-{run}-4,di@corp.example,Di,\r\n"
    "csv-{run}-5,ed@corp.example,Ed,2 Side St,surplus\r\n"
)


def lead_add(
    dev_env: WorkflowEnvironment, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """No worker is needed: each row is a signal-with-start, on a task queue of its own."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "COLUMNS": "120",
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), "lead", "add", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_csv_progress_and_summary_count_the_same_rows(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Finding 27: the bar says 5/5 rows and the summary '3 of 5 rows applied' (the header,
    the blank line and the second physical line of a row are no rows)."""
    (tmp_path / "leads.csv").write_text(LEADS_CSV.format(run=uuid.uuid4().hex[:8]))
    queue = f"csv-{uuid.uuid4().hex[:8]}"
    added = await asyncio.to_thread(lead_add, dev_env, tmp_path, "leads.csv", "--task-queue", queue)
    assert added.returncode == 1, added.stderr
    assert re.search(r"leads\.csv .* 5/5 rows 2 rejected", added.stdout), added.stdout
    assert "3 of 5 rows applied" in added.stdout
    # Line numbers are the file's: the bad rows start on lines 4 and 8.
    assert "line 4: email: not a valid email address" in added.stderr
    assert "line 8: 5 cells, the header has 4" in added.stderr
    assert "2 rejected rows kept in leads.rejects.csv" in added.stderr

    as_json = await asyncio.to_thread(
        lead_add, dev_env, tmp_path, "leads.csv", "--json", "--task-queue", queue
    )
    report = json.loads(as_json.stdout)
    assert (report["read"], report["applied"], report["rejected"]) == (5, 3, 2)


async def test_rejected_csv_rows_are_a_csv_with_an_error_column_to_fix_and_send_again(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Finding 27: the rejects of a CSV are a CSV (the input's columns plus 'error'), not
    JSON lines; once fixed, that very file is accepted (its 'error' column is ignored)."""
    run = uuid.uuid4().hex[:8]
    (tmp_path / "leads.csv").write_text(LEADS_CSV.format(run=run))
    queue = f"csv-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(lead_add, dev_env, tmp_path, "leads.csv", "--task-queue", queue)

    assert not list(tmp_path.glob("*.jsonl"))
    rejects = tmp_path / "leads.rejects.csv"
    rows = list(csv.reader(io.StringIO(rejects.read_text())))
    assert rows[0] == ["lead_id", "email", "first_name", "address", "error"]
    assert rows[1][:4] == [f"csv-{run}-2", "not-an-email", "Bob", ""]
    assert rows[1][4].startswith("line 4: email: not a valid email address")
    assert rows[2][:5] == [f"csv-{run}-5", "ed@corp.example", "Ed", "2 Side St", "surplus"]
    assert rows[2][5] == "line 8: 5 cells, the header has 4"

    # The user fixes both rows in the rejects file and sends it again as it is.
    fixed = io.StringIO()
    writer = csv.writer(fixed)
    writer.writerow(rows[0])
    writer.writerow([f"csv-{run}-2", "bob@corp.example", "Bob", "", rows[1][4]])
    writer.writerow([f"csv-{run}-5", "ed@corp.example", "Ed", "2 Side St", rows[2][5]])
    rejects.write_text(fixed.getvalue())
    again = await asyncio.to_thread(
        lead_add, dev_env, tmp_path, "leads.rejects.csv", "--task-queue", queue
    )
    assert again.returncode == 0, again.stderr
    assert "2 of 2 rows applied" in again.stdout
