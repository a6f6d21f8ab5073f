"""The package's shape, read from its source: data flows one way (no two modules import each
other, type-hint imports included), and no module reaches into another object's private members."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Private attributes of other libraries' objects that the package reads on purpose, with why.
FOREIGN_PRIVATE = {
    # httpx offers no public way to reach the connection pool's network backend, which the
    # deadline transport wraps to bound a whole call (cloud_adapter/_deadline.py explains).
    "_transport",
    "_mounts",
    "_network_backend",
}


def _modules() -> dict[str, Path]:
    """Module name -> file, by pyproject's ``package-dir`` mapping."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    out: dict[str, Path] = {}
    for package, folder in mapping.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join([package, *parts]).removesuffix(".__init__")
            out.setdefault(name, path)
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (anywhere in the file; a package's ``__init__`` is
    its face and is not followed)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join([*parts[:keep], *([node.module] if node.module else [])])
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_two_modules_import_each_other() -> None:
    modules = _modules()
    assert "specsteer._engine" in modules and "specsteer.privacy._guard" in modules
    faces = {m for m, p in modules.items() if p.name == "__init__.py"}
    edges = {m: set() if m in faces else _imports(m, p, modules) for m, p in modules.items()}
    assert "specsteer._link" in edges["specsteer._loop"]  # the reader sees real arrows
    assert _cycles(edges) == []


def _private_reads(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or attr.startswith("__") or attr in FOREIGN_PRIVATE:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        yield node.lineno, ast.unparse(node)


def test_no_module_reaches_into_another_objects_private_members() -> None:
    reads = [
        f"{path.relative_to(ROOT)}:{line} {text}"
        for path in _modules().values()
        for line, text in _private_reads(path)
    ]
    assert reads == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The readers above find a cycle and a private read when there is one."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    sample = tmp_path / "sample.py"
    sample.write_text("def f(decoder):\n    return decoder._private, self._mine\n")
    assert [text for _, text in _private_reads(sample)] == ["decoder._private"]
