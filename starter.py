"""``python starter.py …`` is the ``nurture`` command: run the engine, feed it leads and
events, act as a rep, audit and simulate. See ``python starter.py --help``."""

from __future__ import annotations


def main() -> None:
    from nurture.cli import app

    app()


if __name__ == "__main__":
    main()
