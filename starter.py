"""``python starter.py …`` is the ``nurture`` command: run the engine, feed it leads and
events, act as a rep, audit and simulate. See ``python starter.py --help``."""

from __future__ import annotations


def main() -> None:
    from nurture.cli import app
    from nurture.migrations import SchemaTooNewError

    try:
        app()
    except SchemaTooNewError as exc:  # from any command that opens the database
        from nurture.cli.output import fail
        from nurture.process import exit_now

        exit_now(fail(str(exc), 2))


if __name__ == "__main__":
    main()
