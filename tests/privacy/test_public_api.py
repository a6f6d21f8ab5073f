"""The public surface of specsteer.privacy is deliberate, and the layer depends on no other subpackage."""

from __future__ import annotations

import ast
from pathlib import Path

import specsteer.privacy as privacy

PRIVACY = Path(privacy.__file__).resolve().parent


def test_all_is_sorted_exported_and_complete() -> None:
    assert list(privacy.__all__) == sorted(privacy.__all__, key=lambda n: (not n.isupper(), n))
    for name in privacy.__all__:
        assert hasattr(privacy, name), name
    public = {n for n in vars(privacy) if not n.startswith("_")}
    assert public == set(privacy.__all__)


def test_init_has_no_logic() -> None:
    tree = ast.parse((PRIVACY / "__init__.py").read_text())
    kinds = {type(node) for node in tree.body}
    assert kinds <= {ast.Expr, ast.ImportFrom, ast.Assign}


def test_privacy_imports_only_leaf_sdk_modules() -> None:
    allowed = {"specsteer._errors", "specsteer._home"}
    for path in PRIVACY.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("specsteer")
            ):
                mod = node.module
                assert mod.startswith("specsteer.privacy") or mod in allowed, f"{path.name}: {mod}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("specsteer"), f"{path.name}: {alias.name}"


def test_library_code_never_prints() -> None:
    for path in PRIVACY.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", path.name
