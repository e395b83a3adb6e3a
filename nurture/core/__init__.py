"""Decisions on a whole lead (its state in, what to do out), called by the workflow."""
