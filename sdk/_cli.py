"""The ``specsteer`` command line."""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``specsteer`` command."""
    raise SystemExit("specsteer: the command line is not built yet")
