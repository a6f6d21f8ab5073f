"""The real models, loaded once for the whole integration run and shared by its tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from specsteer import load_cloud_qwen_coder_1_5b, load_device_qwen_coder_0_5b
from specsteer.backends import ModelBackend


@pytest.fixture(scope="session")
def qwen_pair(
    real_model_cache: Path, test_runtimes: dict[str, str]
) -> tuple[ModelBackend, ModelBackend]:
    """The default pair on the tests' runtimes (tests/conftest.py)."""
    device = load_device_qwen_coder_0_5b(real_model_cache, runtime=test_runtimes["device"])
    cloud = load_cloud_qwen_coder_1_5b(real_model_cache, runtime=test_runtimes["cloud"])
    return device, cloud
