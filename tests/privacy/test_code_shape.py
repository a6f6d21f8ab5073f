"""The privacy layer reads in screens: no function longer than 60 lines (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import specsteer.privacy

PRIVACY = Path(specsteer.privacy.__file__).parent
LIMIT = 60


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LIMIT
    ]


@pytest.mark.parametrize("path", sorted(PRIVACY.glob("*.py")), ids=lambda p: p.name)
def test_every_function_fits_a_screen(path: Path) -> None:
    assert _long_functions(path) == []
