"""Pure rules of a lead: scoring, cadences, routing, SLA, send windows, matching, stages,
the rule models and the lead's own profile and events. No I/O, no Temporal, no SQL."""
