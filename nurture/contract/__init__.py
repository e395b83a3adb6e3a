"""What crosses the workflow boundary, so that clients (the CLI, the HTTP service, the audit)
reach a lead without importing the workflow: its names (workflow, signals, updates, query, task
queue) and search attributes. The workflow declares itself with these same names."""
