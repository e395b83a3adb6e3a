"""Hand the current rules to workflows; re-read the files when they change on disk."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog
from temporalio import activity

from nurture.config_loader import ConfigError, load_rules
from nurture.messages import LOAD_RULES, LoadRulesRequest
from nurture.rules import Rules

log = structlog.get_logger(__name__)


class RulesSource:
    """The rules as the config directory says now; the last good ones if an edit broke them.

    A marketer's typo must not stop leads: a broken edit is logged loudly and ignored until it
    is fixed (``nurture config check`` shows the same errors before saving).
    """

    def __init__(
        self,
        config_dir: Path,
        templates_dir: Path,
        time_scale: float = 1.0,
        recheck_every: float = 1.0,
    ) -> None:
        self.config_dir = config_dir
        self.templates_dir = templates_dir
        self.time_scale = time_scale
        self.recheck_every = recheck_every  # seconds between looks at the files
        self._lock = threading.Lock()
        self._checked_at = time.monotonic()
        self._stamp = self._mtimes()
        self._rules = load_rules(config_dir, templates_dir, time_scale)

    def _mtimes(self) -> tuple[float, ...]:
        paths = sorted(self.config_dir.glob("*.yaml")) + sorted(self.templates_dir.rglob("*"))
        return tuple(p.stat().st_mtime for p in paths if p.is_file())

    def current(self) -> Rules:
        with self._lock:
            if time.monotonic() - self._checked_at < self.recheck_every:
                return self._rules
            self._checked_at = time.monotonic()
            stamp = self._mtimes()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._rules = load_rules(self.config_dir, self.templates_dir, self.time_scale)
                    log.info("rules reloaded", version=self._rules.version)
                except ConfigError as exc:
                    log.error(
                        "rules edit rejected; keeping the last good rules",
                        version=self._rules.version,
                        problems=exc.problems,
                    )
            return self._rules


class RulesActivities:
    def __init__(self, source: RulesSource) -> None:
        self.source = source

    @activity.defn(name=LOAD_RULES)
    def load_rules(self, request: LoadRulesRequest) -> Rules | None:
        """The current rules, or None when the caller already has this version."""
        rules = self.source.current()
        return None if rules.version == request.known_version else rules
