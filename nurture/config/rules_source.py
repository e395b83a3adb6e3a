"""The rules and templates in force: loaded, checked and frozen together as one version; the
files re-read when they change on disk, a broken edit refused and the last good version kept.

Workers hand these rules to workflows (``activities/rules.py``) and render emails and tasks from
the templates of the same version, held in memory, never from a newer unchecked file; the HTTP
service reads which event types scoring knows.

A worker's rules also carry the winners its A/B tests' winner rules chose
(``nurture.config.winner_check``), looked at every minute: a decision is a new version of the
rules, reaching every lead through the rules it reads before each touch.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nurture.config.config_loader import ConfigError, RuleSet, load_rule_set
from nurture.config.file_watch import ChangeWatch
from nurture.config.rules_author import rules_author
from nurture.config.templating import TemplateSet
from nurture.domain.leads import LeadEvent
from nurture.domain.rules import DecidedWinner, Rules
from nurture.domain.rules_diff import rules_snapshot
from nurture.domain.scoring import qualifies_instantly
from nurture.store.rules_content import keep_rules, kept_rules

log = structlog.get_logger(__name__)
WINNER_AUTHOR = "winner rule"
"""Who the rules history says changed the rules when a winner rule chose its winner."""


class RulesSource:
    """The rules as the config directory says now; the last good ones if an edit broke them.

    A marketer's typo must not stop leads: a broken edit is refused and the last good version
    (rules and templates) stays in force. The refusal is logged and, once
    :meth:`record_status_in` gave a database, recorded there with every problem for
    ``nurture config status`` and the dashboard (``nurture config check`` shows the same
    problems before saving).
    """

    def __init__(
        self,
        config_dir: Path,
        templates_dir: Path,
        time_scale: float = 1.0,
        recheck_every: float = 1.0,
        winner_check_every: float = 60.0,
    ) -> None:
        self.config_dir = config_dir
        self.templates_dir = templates_dir
        self.time_scale = time_scale
        self.winner_check_every = winner_check_every
        self._lock = threading.Lock()
        self._watch = ChangeWatch(self._mtimes, recheck_every)
        self._files = load_rule_set(config_dir, templates_dir, time_scale)  # as on disk
        self._winners: dict[str, DecidedWinner] = {}
        self._set = self._files  # in force: the files' rules with the winners decided
        self.loaded_at = datetime.now(UTC)
        self._status: Engine | None = None
        self._refused = False  # the newest edit on disk was refused
        self._winners_looked_at = time.monotonic()
        self._kept: set[str] = set()  # versions whose content the engine database keeps

    def _mtimes(self) -> tuple[tuple[str, float], ...]:
        paths = sorted(self.config_dir.glob("*.yaml")) + sorted(self.templates_dir.rglob("*"))
        return tuple((str(p), p.stat().st_mtime) for p in paths if p.is_file())

    def current(self) -> Rules:
        return self.rule_set().rules

    def sales_ready(self, event: LeadEvent) -> bool:
        """Whether ``event`` hands its lead to sales at once under the rules in force (an
        ``instant_qualify`` type): what the edge puts ahead of nurture work."""
        return qualifies_instantly(event, self.current().scoring)

    def templates(self) -> TemplateSet:
        """The templates of the rules version in force (checked with it, held in memory)."""
        templates = self.rule_set().templates
        assert templates is not None  # always read: the source has a templates_dir
        return templates

    def rule_set(self) -> RuleSet:
        with self._lock:
            if self._watch.changed():
                self._reload()
            due = time.monotonic() - self._winners_looked_at >= self.winner_check_every
            if self._status is not None and due and self._look_at_winners():
                self._record(author=WINNER_AUTHOR)
            return self._set

    def _reload(self) -> None:
        try:
            fresh = load_rule_set(self.config_dir, self.templates_dir, self.time_scale)
        except ConfigError as exc:
            log.error(
                "rules edit rejected; keeping the last good rules",
                version=self._set.rules.version,
                problems=exc.problems,
            )
            self._refused = True
            self._record(rejected=exc.problems)
            return
        if fresh.rules.version == self._files.rules.version and not self._refused:
            return  # touched, not changed
        # A new version, or the files changed back to the one in force after a refused edit:
        # either way what is on disk is what is sent again.
        self._files, self.loaded_at, self._refused = fresh, datetime.now(UTC), False
        self._set = _with_winners(fresh, self._winners)
        log.info("rules reloaded", version=self._set.rules.version)
        self._record()

    def _look_at_winners(self) -> bool:
        """Let winner rules decide, then take in every winner decided (by any worker); True
        when the rules in force changed."""
        from nurture.config.winner_check import decide_winners
        from nurture.store.variant_winners import decided_winners

        assert self._status is not None
        self._winners_looked_at = time.monotonic()
        try:
            decide_winners(self._status, self._files.rules, self._winners)
            found = decided_winners(self._status)
        except SQLAlchemyError as exc:  # the test goes on as it was; looked at again later
            log.warning("A/B winners not looked at", error=str(exc))
            return False
        if found == self._winners:
            return False
        self._winners, self.loaded_at = found, datetime.now(UTC)
        self._set = _with_winners(self._files, found)
        log.info("rules changed by a winner rule", version=self._set.rules.version)
        return True

    def record_status_in(self, engine: Engine) -> None:
        """Record the version in force (now and at every change) and every refused edit in
        the engine database, where ``nurture config status`` and the dashboard read it."""
        with self._lock:
            self._status = engine
            self._look_at_winners()
            self._record()

    def _record(self, rejected: list[str] | None = None, author: str | None = None) -> None:
        if self._status is None:
            return
        from nurture.store.rules_status import ROW, InForce, record_status

        in_force = InForce(
            ROW,
            self._set.rules.version,
            self.loaded_at,
            str(self.config_dir),
            str(self.templates_dir),
        )
        record_status(self._status, in_force, rejected)
        if rejected is None:
            self.kept_for_replay(self._set.rules)
            self._record_version(author)

    def kept_for_replay(self, rules: Rules) -> bool:
        """Whether the engine database keeps ``rules`` by their version, where a worker
        replaying a lead that read them finds them (``nurture.contract.shared_rules``); kept
        now if they are not yet. False without a database, or while it is unreachable: a lead
        is then handed the rules themselves, as before versions were shared."""
        if rules.version in self._kept:
            return True
        if self._status is None:
            return False
        try:
            keep_rules(self._status, rules)
        except SQLAlchemyError as exc:
            log.warning("rules not kept for replay", version=rules.version, error=str(exc))
            return False
        self._kept.add(rules.version)
        return True

    def kept_rules(self, version: str) -> Rules | None:
        """The rules the engine database keeps as ``version``, if any."""
        if self._status is None:
            return None
        return kept_rules(self._status, version)

    def _record_version(self, author: str | None) -> None:
        """The version in force in the rules history (once: the first process to load it)."""
        from nurture.store.rules_history import is_recorded, record_version

        assert self._status is not None
        templates = self._set.templates.sources if self._set.templates else {}
        try:
            if is_recorded(self._status, self._set.rules.version):
                return  # as every process starting on rules already seen: no git, no snapshot
            record_version(
                self._status,
                self._set.rules.version,
                rules_snapshot(self._set.rules, templates),
                author or rules_author(self.config_dir, self.templates_dir),
                self.loaded_at,
            )
        except SQLAlchemyError as exc:  # the history is for people: the rules still apply
            version = self._set.rules.version
            log.warning("rules version not recorded", version=version, error=str(exc))


def _with_winners(files: RuleSet, winners: dict[str, DecidedWinner]) -> RuleSet:
    """The rules from the files with the decided winners; a version of their own."""
    if not winners:
        return files
    decided = ",".join(f"{key}={winners[key].variant}" for key in sorted(winners))
    suffix = hashlib.sha256(decided.encode()).hexdigest()[:8]
    rules = files.rules.model_copy(
        update={"winners": dict(winners), "version": f"{files.rules.version}+w{suffix}"}
    )
    return RuleSet(rules=rules, templates=files.templates)
