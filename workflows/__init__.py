"""Temporal workflows. Code here runs inside the workflow sandbox: deterministic, no I/O."""
