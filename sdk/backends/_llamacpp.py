"""The llama.cpp backend: a GGUF file run by ``llama-cpp-python``, text through the HF tokenizer.

Optional: ``pip install 'specsteer[llamacpp]'`` (or ``make install-llamacpp``) builds
llama-cpp-python from source, which takes minutes. docs/backends.md has its speed and its
agreement with the float32 transformers backend on the same weights.

Logits are read straight from ``llama_decode`` for every position of a block (llama-cpp-python's
``create_completion(echo=True, logprobs=...)`` was measured to return wrong prompt
log-probabilities, so it is not used). One llama.cpp context holds one KV cache, so every cache
this backend hands out is a context of its own: two :class:`~specsteer.backends.KVStream` objects
on one backend (the engine's private and public views) never see each other's tokens. The
weights are loaded once and shared by all contexts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from specsteer._errors import (
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    RuntimeFailure,
)
from specsteer._hf import quiet_progress_bars
from specsteer.backends._base import ModelBackend
from specsteer.backends._gguf import check_gguf, derived_dir, partial, publish_dir
from specsteer.backends._hftext import HFTokenizerText
from specsteer.backends._transformers import _END_OF_TURN

__all__ = ["LlamaCppBackend"]

logger = logging.getLogger(__name__)

#: Idle contexts kept for reuse when a stream drops its cache (creating one costs milliseconds
#: and a compute-buffer allocation).
_IDLE_CONTEXTS = 4


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
        from llama_cpp import _internals
    except ImportError as e:
        raise MissingDependencyError(
            "llama-cpp-python", extra="llamacpp", purpose="the llama.cpp backend"
        ) from e
    # llama-cpp-python prints llama.cpp's log to stderr unless its logger says otherwise; a
    # library must not print, so keep only errors unless the user configured that logger.
    lib_logger = logging.getLogger("llama-cpp-python")
    if lib_logger.level == logging.NOTSET:
        lib_logger.setLevel(logging.ERROR)
    return llama_cpp, _internals


class _Sequence:
    """One KV cache: a llama.cpp context owned by one stream, and how many positions it holds.

    When the stream drops it (garbage collection), its context goes back to the backend's pool.
    """

    __slots__ = ("__weakref__", "ctx", "n_past")

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.n_past = 0

    def get_seq_length(self) -> int:
        """Positions held (the name transformers' caches use)."""
        return self.n_past


class _ContextPool:
    """Idle llama.cpp contexts, cleared and ready for a new sequence."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def take(self) -> Any | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give(self, ctx: Any) -> None:
        if ctx.ctx is None:  # already freed (the model closed first)
            return
        ctx.kv_cache_clear()
        with self._lock:
            if len(self._idle) < self.limit:
                self._idle.append(ctx)
                return
        ctx.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for ctx in idle:
            ctx.close()


class LlamaCppBackend(HFTokenizerText, ModelBackend):
    """A GGUF model run by llama.cpp on the CPU, with a Hugging Face tokenizer for text.

    The tokenizer is the one the transformers backend builds for the same file, so token ids,
    chat templates and :meth:`tokenizer_fingerprint` are identical and the two backends can be
    paired in token-id mode or swapped for each other.

    Args:
        model_path: the ``.gguf`` file.
        tokenizer: its Hugging Face tokenizer (a ``PreTrainedTokenizerFast``).
        name: a short name for results.
        n_ctx: the most positions one sequence (prompt + answer) may hold; each context
            allocates its KV cache for this many.
        n_batch: the most tokens one ``llama_decode`` call evaluates; longer blocks are split.
        n_threads: CPU threads; ``None`` follows ``torch.get_num_threads()`` at every call, so the
            same thread setting governs both backends.

    Raises:
        MissingDependencyError: llama-cpp-python is not installed.
        InvalidInputError: the file is missing or not a GGUF file.
        ModelLoadError: llama.cpp could not load it, or its vocabulary is wider than the logits.
    """

    @property
    def runtime(self) -> str:
        return "llama.cpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        tokenizer: Any,
        *,
        name: str | None = None,
        n_ctx: int = 8192,
        n_batch: int = 512,
        n_threads: int | None = None,
    ) -> None:
        llama_cpp, internals = _import_llama_cpp()
        self._llama_cpp = llama_cpp
        self._internals = internals
        path = check_gguf(model_path)
        self.model_path = path
        self.tokenizer = tokenizer
        self.name = name or path.stem
        self._fingerprint: str | None = None
        self.n_ctx = int(n_ctx)
        self.context_limit = self.n_ctx
        self.n_batch = int(n_batch)
        self.n_threads = n_threads
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        try:
            self._model = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        except Exception as e:  # llama-cpp-python raises ValueError, llama.cpp may abort earlier
            raise ModelLoadError(f"llama.cpp could not load {path}: {e}") from e
        self._vocab = int(self._model.n_vocab())
        if len(tokenizer) > self._vocab:
            raise ModelLoadError(
                f"{path.name} has {self._vocab} logits but its tokenizer {len(tokenizer)} tokens: "
                "pass the tokenizer made for this GGUF file"
            )
        eos: set[int] = set()
        if isinstance(tokenizer.eos_token_id, int):
            eos.add(tokenizer.eos_token_id)
        vocab = tokenizer.get_vocab()
        eos.update(vocab[t] for t in _END_OF_TURN if t in vocab)
        eos.add(int(self._llama_cpp.llama_vocab_eos(self._model.vocab)))
        self._eos = frozenset(i for i in eos if 0 <= i < self._vocab)
        self._pool = _ContextPool(_IDLE_CONTEXTS)
        # One scratch batch per thread: contexts may run concurrently, a batch may not.
        self._batches = threading.local()

    # -- loading -------------------------------------------------------------------------------

    @classmethod
    def from_gguf(
        cls,
        path: str | os.PathLike[str],
        *,
        tokenizer: Any | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
    ) -> LlamaCppBackend:
        """Load a GGUF file; its HF tokenizer is read from the file once and cached.

        Args:
            path: the ``.gguf`` file.
            tokenizer: the tokenizer to use; default: the one transformers reads from the file,
                saved under ``cache_dir`` (default ``$SPECSTEER_HOME/models``) so later loads
                skip the GGUF parse.
            cache_dir: where the tokenizer is cached.
            name: a short name for results.
            n_ctx: see the class.
            n_threads: see the class.
        """
        gguf = check_gguf(path)
        if tokenizer is None:
            tokenizer = _gguf_tokenizer(gguf, cache_dir)
        return cls(gguf, tokenizer, name=name, n_ctx=n_ctx, n_threads=n_threads)

    # -- contexts ------------------------------------------------------------------------------

    def _threads(self) -> int:
        return self.n_threads if self.n_threads is not None else torch.get_num_threads()

    def _new_sequence(self) -> _Sequence:
        if self._model is None:
            raise RuntimeError(f"{self.name} is closed")
        ctx = self._pool.take()
        if ctx is None:
            params = self._llama_cpp.llama_context_default_params()
            params.n_ctx = self.n_ctx
            params.n_batch = self.n_batch
            params.n_ubatch = self.n_batch
            params.n_seq_max = 1
            params.n_threads = params.n_threads_batch = self._threads()
            params.no_perf = True
            try:
                ctx = self._internals.LlamaContext(model=self._model, params=params, verbose=False)
            except Exception as e:
                raise ModelLoadError(
                    f"llama.cpp could not create a context of {self.n_ctx} positions for "
                    f"{self.name}: {e}; pass a smaller n_ctx"
                ) from e
        seq = _Sequence(ctx)
        weakref.finalize(seq, self._pool.give, ctx)
        return seq

    def _batch(self) -> Any:
        batch = getattr(self._batches, "batch", None)
        if batch is None:
            batch = self._internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1)
            self._batches.batch = batch
        return batch

    # -- ModelBackend ----------------------------------------------------------------------------

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        return self.forward_tail(ids, cache, len(ids))

    def forward_tail(
        self, ids: Sequence[int], cache: Any | None, rows: int
    ) -> tuple[torch.Tensor, Any]:
        # Only the last ``rows`` positions get an output row: a prompt's other positions skip
        # the output layer and the copy of their logits.
        if not ids:
            raise ValueError("forward needs at least one token")
        bad = [i for i in ids if not 0 <= int(i) < self._vocab]
        if bad:
            raise InvalidInputError(f"token ids out of range for {self.name}: {bad[:5]}")
        seq: _Sequence = cache if cache is not None else self._new_sequence()
        if seq.n_past + len(ids) > self.n_ctx:
            raise InvalidInputError(
                f"{seq.n_past + len(ids)} positions exceed the context of {self.n_ctx} that "
                f"{self.name} was loaded with; load it with a larger n_ctx"
            )
        threads = self._threads()
        self._llama_cpp.llama_set_n_threads(seq.ctx.ctx, threads, threads)
        rows = max(1, min(rows, len(ids)))
        out = torch.empty((rows, self._vocab), dtype=torch.float32)
        start = seq.n_past
        try:
            for lo in range(0, len(ids), self.n_batch):
                chunk = [int(i) for i in ids[lo : lo + self.n_batch]]
                self._decode(seq, chunk, lo, len(ids) - rows, out)
        except RuntimeError as e:
            # Leave the cache as it was before the call, so the stream stays usable.
            seq.ctx.kv_cache_seq_rm(0, start, -1)
            seq.n_past = start
            raise RuntimeFailure(f"llama.cpp failed to evaluate {len(ids)} tokens: {e}") from e
        return out, seq

    def _decode(
        self, seq: _Sequence, chunk: list[int], lo: int, first_out: int, out: torch.Tensor
    ) -> None:
        """Evaluate ``chunk`` (positions ``lo``.. of the call) and copy the rows of positions
        ``>= first_out`` into ``out``."""
        import numpy as np

        batch = self._batch()
        batch.set_batch(batch=chunk, n_past=seq.n_past, logits_all=False)
        flags = [lo + i >= first_out for i in range(len(chunk))]
        for i, flag in enumerate(flags):
            batch.batch.logits[i] = flag
        seq.ctx.decode(batch)
        n_out = sum(flags)
        if n_out:
            logits = np.ctypeslib.as_array(seq.ctx.get_logits(), shape=(n_out, self._vocab))
            at = max(0, lo - first_out)
            out[at : at + n_out] = torch.from_numpy(logits)
        seq.n_past += len(chunk)

    def crop(self, cache: Any, length: int) -> Any | None:
        seq: _Sequence = cache
        if length >= seq.n_past:
            return seq
        if not seq.ctx.kv_cache_seq_rm(0, length, -1):
            return None  # a cache that cannot drop a tail (recurrent models): re-encode
        seq.n_past = length
        return seq

    def close(self) -> None:
        """Free the contexts and the weights (streams still holding a cache must not be used)."""
        self._pool.close()
        if self._model is not None:
            self._model.close()  # also frees every context still alive
            self._model = None


def _gguf_tokenizer(gguf: Path, cache_dir: str | os.PathLike[str] | None) -> Any:
    """The HF tokenizer transformers builds from ``gguf``, cached as a tokenizer folder."""
    from transformers import AutoTokenizer

    target = derived_dir(gguf, cache_dir, "-tokenizer")
    try:
        with quiet_progress_bars():
            if (target / ".complete").is_file():
                return AutoTokenizer.from_pretrained(target, local_files_only=True)
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            tmp = partial(target)
            tok.save_pretrained(tmp)
            (tmp / ".complete").write_text(json.dumps({"source": str(gguf)}))
            publish_dir(tmp, target)
            return tok
    except Exception as e:  # transformers raises many types here
        raise ModelLoadError(f"could not read the tokenizer of {gguf}: {e}") from e
