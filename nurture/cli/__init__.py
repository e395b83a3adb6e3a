"""The ``nurture`` command line (also ``python starter.py``)."""

from nurture.cli.app import app

__all__ = ["app"]
