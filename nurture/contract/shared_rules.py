"""The rules leads share by version: a lead's history records the version of the rules it read
(their content hash), not the rules (13 KB, once per lead and run, was a third of what an idle
lead cost the Temporal server).

Every worker process keeps each version it met once, here. The rules activity puts the version
in force on the shelf before it hands the version to a lead; a worker replaying a history that
names a version it never met takes it from the engine database, where the first process that
loaded it kept it (``nurture.store.rules_content``), through the places the worker gave
(:meth:`RulesShelf.read_from`). A version's content never changes, so reading it is the same on
every replay, whichever worker does it.

Passed through the workflow sandbox (one shelf per process, not per lead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from nurture.domain.rules import Rules

Fetch = Callable[[str], Rules | None]
"""A place that may keep a version's rules: the rules, or None when it has not that version."""


class RulesUnavailable(RuntimeError):
    """A history names a rules version this worker cannot read yet (the database is down, or
    is not the one the version was kept in). It fails the workflow task, which Temporal retries:
    the lead waits rather than deciding with other rules."""


class RulesShelf:
    def __init__(self) -> None:
        self._kept: dict[str, Rules] = {}
        self._places: list[Fetch] = []
        self._lock = threading.Lock()

    def keep(self, rules: Rules) -> None:
        self._kept.setdefault(rules.version, rules)

    def read_from(self, fetch: Fetch) -> None:
        """Also look there for a version this process has not met (a worker's database)."""
        with self._lock:
            if fetch not in self._places:
                self._places.append(fetch)

    def rules(self, version: str) -> Rules:
        """The rules of ``version``; :class:`RulesUnavailable` if no place has them now."""
        kept = self._kept.get(version)
        if kept is not None:
            return kept
        errors = []
        for fetch in list(self._places):
            try:
                found = fetch(version)
            except Exception as err:  # the next place may have it; else the task is retried
                errors.append(f"{type(err).__name__}: {err}")
                continue
            if found is not None:
                if found.version != version:
                    raise RulesUnavailable(f"rules kept as {version} say {found.version}")
                self.keep(found)
                return found
        why = "; ".join(errors) or f"none of {len(self._places)} places keeps it"
        raise RulesUnavailable(f"rules version {version} cannot be read: {why}")


SHELF = RulesShelf()
"""This process's shelf: the rules activity fills it, workers add their database, leads read."""
