"""Finding 10 of issue 13: the data dir was 0755 and nurture.db / temporal.db 0644, so any
local account could read outbox rows (addresses, subjects) and API key hashes. The data dir is
0700 and everything in it 0600, new or left by an earlier version; and the SendGrid stand-in
``nurture up`` starts has its controls behind a token (finding 19) and a mailbox linked from
the banner (finding 23)."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from nurture.store.db import keep_private, make_engine
from tests.test_cli_end_to_end import free_port, start_up, stop


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def readable_by_others(top: Path) -> list[str]:
    """Every path under ``top`` (itself included) with any group or other permission."""
    paths = [top, *top.rglob("*")]
    return [f"{p} {oct(mode(p))}" for p in paths if not p.is_symlink() and mode(p) & 0o077]


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual login umask, restored afterwards (keep_private changes the process's)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_an_existing_open_data_dir_is_made_private(tmp_path: Path, umask_022: None) -> None:
    """Finding 10: what an earlier version left 0755/0644 becomes 0700/0600 on start."""
    data = tmp_path / "data"
    (data / "rejects").mkdir(parents=True)
    for name in (
        "nurture.db",
        "nurture.db-wal",
        "temporal.db",
        "secret.key",
        "temporal.log",
    ):
        (data / name).write_text("x")
    (data / "rejects" / "leads.csv").write_text("x")
    (data / "link").symlink_to("/etc/hostname")  # not followed, not changed
    assert readable_by_others(data)

    keep_private(data)

    assert readable_by_others(data) == []
    assert mode(data) == 0o700 and mode(data / "secret.key") == 0o600
    assert mode(Path("/etc/hostname")) & 0o044  # the symlink's target is left alone
    created = data / "new.log"
    created.write_text("x")  # created after: private by the umask
    assert mode(created) == 0o600


def test_a_new_sqlite_database_and_its_wal_are_private_whoever_creates_it(
    tmp_path: Path, umask_022: None
) -> None:
    """Finding 10: a command that creates nurture.db under umask 022 still leaves it 0600,
    and SQLite gives its WAL and SHM files the same mode."""
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x int)"))
        conn.execute(text("INSERT INTO probe VALUES (1)"))
        files = sorted(p.name for p in tmp_path.iterdir())
        assert {"nurture.db", "nurture.db-wal", "nurture.db-shm"} <= set(files)
        assert readable_by_others(tmp_path / "nurture.db") == []
        assert readable_by_others(tmp_path / "nurture.db-wal") == []
        assert readable_by_others(tmp_path / "nurture.db-shm") == []
    engine.dispose()


def test_nurture_up_keeps_data_private_and_its_standin_controls_need_the_token(
    tmp_path: Path,
) -> None:
    """Findings 10, 19 and 23 through ``nurture up`` as a user runs it (umask 022)."""
    ports = {"grpc": free_port(), "ui": free_port(), "sendgrid": free_port(), "http": free_port()}
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    previous = os.umask(0o022)  # inherited by `nurture up`
    try:
        up = start_up(data_dir, ports, log)
    finally:
        os.umask(previous)
    try:
        # Finding 10: the data dir, both databases, the secret key and the logs.
        names = {p.name for p in data_dir.iterdir()}
        assert {"nurture.db", "temporal.db", "secret.key", "sendgrid-standin.token"} <= names
        assert readable_by_others(data_dir) == []

        # Finding 19: the stand-in signs events only for whoever holds the token.
        sendgrid = f"http://127.0.0.1:{ports['sendgrid']}"
        emit = f"{sendgrid}/_standin/messages/nothing/events"
        request = urllib.request.Request(emit, data=b"[]", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        token = (data_dir / "sendgrid-standin.token").read_text().strip()
        request.add_header("X-Standin-Token", token)
        with pytest.raises(urllib.error.HTTPError) as unknown:
            urllib.request.urlopen(request, timeout=10)
        assert unknown.value.code == 404  # past the token: no such message
        assert "message not found" in json.loads(unknown.value.read())["errors"][0]["message"]

        # Finding 23: the banner links the mailbox, which opens with the token it carries.
        banner = log.read_text()
        mailbox = f"{sendgrid}/_standin/mailbox?token={token}"
        assert f"Mailbox (every email sent): {mailbox}\n" in banner, banner[-2000:]
        with urllib.request.urlopen(mailbox, timeout=10) as page:
            assert page.headers["Content-Type"].startswith("text/html")
            assert "No email sent yet" in page.read().decode()
    finally:
        assert stop(up) == 0
