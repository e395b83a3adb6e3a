"""Reaching leads in Temporal: connecting, starting, signalling, updating and querying a lead."""
