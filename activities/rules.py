"""Hand the current rules to workflows: the version in force of :class:`RulesSource`.

Workflows get the rules (small: they are recorded in histories); the email and task activities
render from the templates of the same version (see :mod:`nurture.config.rules_source`).
"""

from __future__ import annotations

from temporalio import activity

from nurture.config.rules_source import RulesSource
from nurture.contract.messages import LOAD_RULES, LoadRulesRequest
from nurture.domain.rules import Rules


class RulesActivities:
    def __init__(self, source: RulesSource) -> None:
        self.source = source

    @activity.defn(name=LOAD_RULES)
    def load_rules(self, request: LoadRulesRequest) -> Rules | None:
        """The current rules, or None when the caller already has this version."""
        rules = self.source.current()
        return None if rules.version == request.known_version else rules
