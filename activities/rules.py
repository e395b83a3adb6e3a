"""Hand the current rules to workflows: the version in force of :class:`RulesSource`.

Workflows get the version of the rules (recorded in their histories), the rules themselves from
this process's shelf (``nurture.contract.shared_rules``); leads that began before versions were
shared, or asking while the engine database cannot keep a new version, get the rules. The email
and task activities render from the templates of the same version (see
:mod:`nurture.config.rules_source`).
"""

from __future__ import annotations

from temporalio import activity

from nurture.config.rules_source import RulesSource
from nurture.contract import shared_rules
from nurture.contract.messages import LOAD_RULES, LoadRulesRequest
from nurture.domain.rules import Rules


class RulesActivities:
    def __init__(self, source: RulesSource) -> None:
        self.source = source

    @activity.defn(name=LOAD_RULES)
    def load_rules(self, request: LoadRulesRequest) -> Rules | str | None:
        """The current rules (or their version, on the shelf), or None when the caller already
        has this version."""
        rules = self.source.current()
        if rules.version == request.known_version:
            return None
        if request.by_version and self.source.kept_for_replay(rules):
            shared_rules.SHELF.keep(rules)  # a local activity: the lead asking runs in this process
            return rules.version
        return rules
