"""Shared handling of Hugging Face libraries (a leaf: imports nothing else from the package)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_progress_bars"]


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' per-tensor progress bars for a local load (about a second), then
    restore them as they were."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
