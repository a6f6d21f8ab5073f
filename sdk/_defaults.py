"""The embedded defaults: the model pairs by name, the generation settings chosen for them, and
the assistant built from both."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from specsteer._assistant import Assistant
from specsteer._config import GenerationConfig
from specsteer._errors import ConfigurationError
from specsteer._models import (
    load_cloud_qwen_coder_1_5b,
    load_device_qwen_coder_0_5b,
    load_smollm2,
)
from specsteer._runtimes import reporting
from specsteer.backends._base import ModelBackend

__all__ = ["DEFAULT_CONFIG", "DEFAULT_PAIR", "PAIRS", "default_assistant", "default_models"]

if TYPE_CHECKING:
    from specsteer.memory import MemoryStore

T = TypeVar("T")


def load_with_progress(progress: bool, label: str, fn: Callable[[], T]) -> T:
    """``fn()``, under a spinner labelled ``label`` when ``progress``; a runtime calibration
    that runs meanwhile shows its steps on the same line."""
    if not progress:
        return fn()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task(label, total=None)

        def show(line: str) -> None:
            bar.update(task, description=f"{label}: {line}")

        with reporting(show):
            return fn()


#: The embedded pairs by name: (device label, device loader, cloud label, cloud loader).
PAIRS: dict[str, tuple[str, Callable[[], ModelBackend], str, Callable[[], ModelBackend]]] = {
    # Different tokenizers: drafts travel as text (cross-vocabulary mode).
    "smollm2-qwen1.5b": (
        "SmolLM2-135M-Instruct",
        load_smollm2,
        "Qwen2.5-Coder-1.5B-Instruct",
        load_cloud_qwen_coder_1_5b,
    ),
    # One tokenizer: token-id mode, the paper's own setting (a larger, slower drafter).
    "qwen0.5b-qwen1.5b": (
        "Qwen2.5-Coder-0.5B-Instruct",
        load_device_qwen_coder_0_5b,
        "Qwen2.5-Coder-1.5B-Instruct",
        load_cloud_qwen_coder_1_5b,
    ),
}
#: Chosen by ``specsteer eval`` on the shipped personal-writing set (docs/evaluation.md): the
#: 135M SmolLM2 drafter rarely writes the user's facts, the 0.5B Qwen drafter does.
DEFAULT_PAIR = "qwen0.5b-qwen1.5b"


def default_models(
    progress: bool = True, pair: str = DEFAULT_PAIR
) -> tuple[ModelBackend, ModelBackend]:
    """Load an embedded pair (default: Qwen2.5-Coder-0.5B-Instruct on the device,
    Qwen2.5-Coder-1.5B-Instruct in the cloud; see :data:`PAIRS`).

    Raises:
        ConfigurationError: an unknown pair name.
    """
    if pair not in PAIRS:
        raise ConfigurationError(f"unknown pair {pair!r}; choose one of: {', '.join(PAIRS)}")
    device_label, load_device, cloud_label, load_cloud = PAIRS[pair]
    device = load_with_progress(progress, f"loading the device model ({device_label})", load_device)
    cloud = load_with_progress(progress, f"loading the cloud model ({cloud_label})", load_cloud)
    return device, cloud


def default_assistant(
    progress: bool = True,
    user_id: str | None = None,
    memory: MemoryStore | None = None,
    pair: str = DEFAULT_PAIR,
) -> Assistant:
    """An assistant over an embedded pair, the cloud model in this process.

    The default pair shares one tokenizer, so drafts travel as token ids; with
    ``pair="smollm2-qwen1.5b"`` the tokenizers differ and drafts travel as text
    (cross-vocabulary mode).

    Args:
        progress: show a spinner while models load.
        user_id: use this user's memories from the store under ``$SPECSTEER_HOME``.
        memory: the store to use (default: opened under ``$SPECSTEER_HOME`` when ``user_id``
            is given).
        pair: which of :data:`PAIRS`.
    """
    device, cloud = default_models(progress, pair)
    if user_id is not None and memory is None:
        from specsteer.memory import MemoryStore

        memory = load_with_progress(progress, "opening the encrypted memory store", MemoryStore)
    return Assistant.in_process(
        device, cloud, memory=memory, user_id=user_id, config=DEFAULT_CONFIG
    )


#: Generation settings for the embedded pairs, chosen by ``specsteer eval`` on the shipped set
#: (docs/evaluation.md): a threshold that lets the device's personal drafts through, a stronger
#: private steer over a wider recovery support (so a name the cloud ranks 40th can still win), and
#: repetition control on both sides so answers do not loop.
DEFAULT_CONFIG = GenerationConfig(
    lam=0.1,
    beta=2.0,
    top_k=100,
    repetition_penalty=1.1,
    no_repeat_ngram_size=4,
    max_new_tokens=96,
    min_new_tokens=24,
)
