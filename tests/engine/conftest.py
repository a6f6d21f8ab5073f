from __future__ import annotations

import pytest

from specsteer.backends import TransformersBackend
from specsteer.testing import tiny_backend


@pytest.fixture(scope="session")
def slm() -> TransformersBackend:
    return tiny_backend(0, name="tiny-slm")


@pytest.fixture(scope="session")
def llm() -> TransformersBackend:
    return tiny_backend(1, name="tiny-llm")


@pytest.fixture(scope="session")
def slm_copy() -> TransformersBackend:
    """An independent instance with the same weights as ``slm``."""
    return tiny_backend(0, name="tiny-slm-copy")
