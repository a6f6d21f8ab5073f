"""Lay out the package as it is installed (``specsteer/`` with its subpackages) for mypy.

The source folders are mapped to subpackages by ``[tool.setuptools] package-dir``; a type checker
reading the working tree needs the installed shape, so this builds it from symlinks.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = {"memory": "memory", "privacy": "privacy", "cloud_adapter": "cloud_adapter"}


def main(out: str) -> None:
    target = ROOT / out
    shutil.rmtree(target, ignore_errors=True)
    pkg = target / "specsteer"
    pkg.mkdir(parents=True)
    for entry in (ROOT / "sdk").iterdir():
        if entry.name == "__pycache__":
            continue
        (pkg / entry.name).symlink_to(entry)
    for name, folder in SUBPACKAGES.items():
        (pkg / name).symlink_to(ROOT / folder)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".typecheck")
