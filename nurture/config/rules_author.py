"""Who changed the rules: the author of the last commit that touched the config directory when
it is a git checkout (and has no uncommitted edits), else ``NURTURE_RULES_AUTHOR``, else
unknown."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
GIT_TIMEOUT_S = 5.0


def rules_author(config_dir: Path, templates_dir: Path | None = None) -> str:
    named = os.environ.get("NURTURE_RULES_AUTHOR", "").strip()
    from_git = _git_author([config_dir, *([templates_dir] if templates_dir else [])])
    return from_git or named or UNKNOWN


def _git_author(dirs: list[Path]) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    where = str(dirs[0])
    paths = [str(d) for d in dirs]
    try:
        dirty = _git(git, where, "status", "--porcelain", "--", *paths)
        if dirty is None or dirty.strip():
            return None  # not a checkout, or edits nobody committed yet: git cannot say who
        author = _git(git, where, "log", "-1", "--format=%an <%ae>", "--", *paths)
    except (OSError, subprocess.SubprocessError):
        return None
    return author.strip() or None if author else None


def _git(git: str, where: str, *args: str) -> str | None:
    done = subprocess.run(
        [git, "-C", where, *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None
