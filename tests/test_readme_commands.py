"""Every command the README shows, run exactly as written, the way a new user would: ``make up``
in one shell, then each ``sh`` block's lines in order in another (with ``.venv/bin`` on PATH, as
``source .venv/bin/activate`` puts it), in a copy of the checkout.

The copy runs in a network namespace of its own, so the README's fixed ports (7233, 8233, 8080,
3030) are free whatever else runs on this machine. ``make test`` is the one command not run: it
is what runs this test.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOT_RUN = {"make test"}  # runs this very test
UP = "make up"
# The README says these exit 1 on purpose: the examples hold bad lines to show the rejects.
DOCUMENTED_EXIT = {
    "nurture lead add examples/leads.jsonl": 1,
    "nurture event examples/events.jsonl": 1,
}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
UP_TIMEOUT_S = 120
COMMAND_TIMEOUT_S = 240


@dataclass(frozen=True)
class Command:
    line: int
    text: str  # as written, without its trailing comment


def readme_commands(markdown: str) -> list[Command]:
    """The commands of every ``sh`` block, continuation lines joined, comments dropped."""
    commands: list[Command] = []
    in_block = False
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(markdown.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            in_block = stripped == "```sh" if not in_block else False
            continue
        if not in_block or (not pending and (not stripped or stripped.startswith("#"))):
            continue
        if not pending:
            start = number
        pending.append(raw.rstrip().removesuffix("\\").rstrip())
        if raw.rstrip().endswith("\\"):
            continue
        text = strip_comment(" ".join(part.strip() for part in pending))
        pending = []
        commands.append(Command(start, text))
    return commands


def strip_comment(text: str) -> str:
    """``cmd args   # why`` -> ``cmd args`` (a # inside quotes stays)."""
    quote_free = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: "_" * len(m.group()), text)
    match = re.search(r"\s#", quote_free)
    return (text[: match.start()] if match else text).strip()


def test_readme_commands_are_parsed_whole() -> None:
    commands = [c.text for c in readme_commands(README.read_text())]
    assert UP in commands and "make test" in commands
    curl = next(c for c in commands if c.startswith("curl") and "/api/events" in c)
    assert curl.endswith("http://127.0.0.1:8080/api/events")  # continuation lines joined
    assert not any("#" in c.split("'")[0] for c in commands if "'" in c)


def copy_checkout(into: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = into / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The set-up's first command made .venv; a new user's second shell finds it there.
    (into / ".venv").symlink_to(Path(sys.prefix))


def script(commands: list[Command], workdir: Path, out: Path) -> str:
    """One shell for the user's second terminal; each command's output and exit code saved."""
    scripts = sysconfig.get_path("scripts")
    lines = [
        "set -m",  # job control: `make up` gets its own process group and takes Ctrl-C
        "ip link set lo up",
        f"cd {shlex.quote(str(workdir))}",
        f"export PATH={shlex.quote(scripts)}:$PATH",
        f"make up > {out}/up.log 2>&1 &",
        "UP=$!",
        f"for _ in $(seq 1 {UP_TIMEOUT_S * 5}); do",
        f"  grep -q 'Nurture is up' {out}/up.log && break",
        "  kill -0 $UP 2>/dev/null || break",
        "  sleep 0.2",
        "done",
        f"grep -q 'Nurture is up' {out}/up.log || {{ echo 'make up did not start'; exit 99; }}",
    ]
    for index, command in enumerate(commands):
        if command.text in NOT_RUN or command.text == UP:
            continue
        # `timeout` runs programs; a variable assignment (KEY=$(…)) must run in this shell.
        bounded = (
            command.text
            if ASSIGNMENT.match(command.text)
            else f"timeout {COMMAND_TIMEOUT_S} {command.text}"
        )
        lines += [
            f"{{ {bounded} ; }} > {out}/{index}.out 2>&1 < /dev/null",
            f"echo $? > {out}/{index}.rc",
        ]
    lines += [
        "kill -INT -- -$UP",  # Ctrl-C
        "for _ in $(seq 1 300); do kill -0 $UP 2>/dev/null || break; sleep 0.2; done",
        "kill -0 $UP 2>/dev/null && { kill -KILL -- -$UP; echo 'running 60 s after Ctrl-C'; }",
        "wait $UP",
        f"echo $? > {out}/up.rc",
    ]
    return "\n".join(lines) + "\n"


def reader_environment() -> dict[str, str]:
    """The environment of someone at a terminal: not the make variables of a ``make test
    ARGS=...`` that started this run (make passes them on, and ``make up`` would take them)."""
    inherited = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "ARGS")
    return {name: value for name, value in os.environ.items() if name not in inherited}


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_every_readme_command_works_as_written(tmp_path: Path) -> None:
    if os.geteuid() != 0 and shutil.which("unshare") is None:
        pytest.fail("this test needs `unshare` (util-linux) for a network namespace")
    workdir, out = tmp_path / "checkout", tmp_path / "out"
    workdir.mkdir()
    out.mkdir()
    copy_checkout(workdir)
    commands = readme_commands(README.read_text())
    (tmp_path / "readme.sh").write_text(script(commands, workdir, out))
    namespace = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "-rn"]
    done = subprocess.run(
        [*namespace, "bash", str(tmp_path / "readme.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**reader_environment(), "COLUMNS": "120", "NURTURE_LOG_FORMAT": "json"},
    )
    up_log = (out / "up.log").read_text(errors="replace") if (out / "up.log").exists() else ""
    assert done.returncode != 99, f"make up did not start:\n{up_log[-3000:]}"

    failures: list[str] = []
    for index, command in enumerate(commands):
        if command.text in NOT_RUN or command.text == UP:
            continue
        rc_file = out / f"{index}.rc"
        output = (out / f"{index}.out").read_text(errors="replace")
        rc = int(rc_file.read_text()) if rc_file.exists() else None
        expected = DOCUMENTED_EXIT.get(command.text, 0)
        refused = command.text.startswith("curl") and '{"detail"' in output  # an error body
        if rc != expected or refused:
            failures.append(
                f"README.md:{command.line}: `{command.text}` exited {rc} "
                f"(expected {expected}):\n{output[-1500:]}"
            )
    assert not failures, "\n\n".join(failures)
    stopped = (out / "up.rc").read_text().strip()
    # make answers Ctrl-C with 130 (interrupted) even when its child stopped cleanly.
    assert stopped in {"0", "130"} and "stopped:" in up_log, (
        f"Ctrl-C did not stop make up cleanly ({stopped}):\n{up_log[-2000:]}"
    )
