"""Every public name resolves, and the package surface names no private module."""

from __future__ import annotations

import importlib
import sys
import typing
from collections.abc import Callable, Iterator

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


def _public_objects() -> dict[str, object]:
    out: dict[str, object] = {}
    for name in PACKAGES:
        module = importlib.import_module(name)
        out.update({attr: getattr(module, attr) for attr in module.__all__})
    return out


def _classes(hint: object) -> Iterator[type]:
    if isinstance(hint, type):
        yield hint
    for arg in typing.get_args(hint):
        yield from _classes(arg)


def _signatures() -> list[Callable[..., object]]:
    from specsteer import Assistant, Decoder, PrivateEgress

    return [Assistant.__init__, Assistant.generate, Decoder.__init__, PrivateEgress.__init__]


@pytest.mark.parametrize("fn", _signatures(), ids=lambda f: f.__qualname__)
def test_public_signatures_name_only_exported_types(fn: Callable[..., object]) -> None:
    """A type a user must build to call the public API can be imported from a public package."""
    public = _public_objects()
    namespace = {**public, **vars(sys.modules[fn.__module__])}
    for param, hint in typing.get_type_hints(fn, globalns=namespace).items():
        for cls in _classes(hint):
            if cls.__module__.startswith("specsteer"):
                assert any(obj is cls for obj in public.values()), (
                    f"{fn.__qualname__}({param}) takes {cls.__name__}, which no public "
                    "package exports"
                )


def test_the_privacy_door_and_its_policy_are_public() -> None:
    import specsteer
    import specsteer.privacy

    assert "PrivateEgress" in specsteer.__all__
    assert {"EgressPolicy", "AuditLog", "DEFAULT_ACTIONS"} <= set(specsteer.privacy.__all__)
