"""Where specsteer keeps on-disk state: one root, ``SPECSTEER_HOME`` (default ``~/.specsteer``).

This module imports nothing from the package, so every subpackage may use it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["specsteer_home"]


def specsteer_home() -> Path:
    """Return the state root, creating it (mode 0700) if needed."""
    raw = os.environ.get("SPECSTEER_HOME")
    root = Path(raw).expanduser() if raw else Path.home() / ".specsteer"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root
