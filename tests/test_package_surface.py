"""Every public name resolves, and the package surface names no private module."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = (
    "specsteer",
    "specsteer.backends",
    "specsteer.cloud_adapter",
    "specsteer.fusion",
    "specsteer.memory",
    "specsteer.privacy",
    "specsteer.testing",
)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported and len(set(exported)) == len(exported)
    for attr in exported:
        assert not attr.startswith("_"), f"{name} exports private name {attr}"
        assert getattr(module, attr) is not None, f"{name}.{attr} does not resolve"
