"""The lead's pure core: what a lead decides, as plain functions of its state.

Nothing here imports Temporal or reads a clock: the workflow (``workflows/lead.py``) passes
``now`` and its run ids in as values, and carries out what these functions return. The modules
are passed through Temporal's sandbox, so they are imported once per worker process, not once
per lead.
"""
