"""The model seam: ``ModelBackend`` and the incremental ``KVStream`` written once on top of it."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["KVStream", "ModelBackend"]

Messages = Sequence[Mapping[str, str]]


class ModelBackend(ABC):
    """A causal language model with its tokenizer.

    Backends implement :meth:`forward` (logits for a block of tokens on top of a KV cache) and
    :meth:`crop` (drop the newest cached positions), plus the tokenizer helpers; everything the
    engine needs beyond that -- incremental streams, block scoring -- is written once here.
    """

    #: A short name for results and logs (e.g. the model folder's name).
    name: str = "model"
    #: The most positions one sequence (prompt and answer) may hold; None when unbounded or
    #: unknown. A chat longer than this loses its oldest turns first (``Assistant``).
    context_limit: int | None = None

    @property
    def runtime(self) -> str:
        """What computes this model, for reports (e.g. ``'llama.cpp'``)."""
        return type(self).__name__

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Width of the logits (may exceed the tokenizer's length, never less)."""

    @property
    @abstractmethod
    def eos_token_ids(self) -> frozenset[int]:
        """Token ids that end a generation."""

    @property
    def end_token_id(self) -> int:
        """The token that ends an answer (the chat template's end of turn), one of
        :attr:`eos_token_ids`."""
        return min(self.eos_token_ids)

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]] | None:
        """Tokens of ``text`` with the character span each covers, or ``None`` when the
        tokenizer cannot say (callers then align by decoding)."""
        return None

    def tokenizer_fingerprint(self) -> str | None:
        """A digest of the vocabulary (lower-case letters ``a``-``p``): equal digests mean token
        ids mean the same text. ``None`` when unknown."""
        return None

    @abstractmethod
    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        """Run ``ids`` on top of ``cache``.

        Returns:
            ``([len(ids), vocab] float32 logits, new cache)``; position i holds the logits for
            the token after ``ids[i]``.
        """

    def forward_tail(
        self, ids: Sequence[int], cache: Any | None, rows: int
    ) -> tuple[torch.Tensor, Any]:
        """:meth:`forward`, when only the logits of the last ``rows`` positions are needed.

        Returns:
            ``([rows, vocab] float32 logits, new cache)``. Backends that can skip the output
            layer for the other positions (a prompt's, say) override this.
        """
        logits, cache = self.forward(ids, cache)
        return logits[-rows:], cache

    @abstractmethod
    def crop(self, cache: Any, length: int) -> Any | None:
        """Return ``cache`` holding only its first ``length`` positions (``None`` to re-encode)."""

    @abstractmethod
    def encode_chat(self, messages: Messages, *, add_generation_prompt: bool = True) -> list[int]:
        """Token ids of ``messages`` rendered with this model's own chat template."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of plain ``text`` (no special tokens added)."""

    @abstractmethod
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """Text of ``ids``."""

    def stream(self) -> KVStream:
        """A new incremental stream over this model (one KV cache)."""
        return KVStream(self)

    def close(self) -> None:
        """Release the model's memory."""


class KVStream:
    """One token sequence with its KV cache, advanced incrementally and cropped on rejection.

    :meth:`logits` reuses the longest cached prefix of the sequence it is asked about, so the
    draft / verify / recover loop never re-encodes the accepted prefix: cost per generated token
    stays flat as the output grows.
    """

    def __init__(self, backend: ModelBackend) -> None:
        self.backend = backend
        self._tokens: list[int] = []
        self._cache: Any | None = None
        self._lock = threading.Lock()
        #: Tokens run through the model by this stream (for stats and tests).
        self.tokens_computed = 0
        #: The position and next-token row of a call made with ``keep_row``.
        self._kept: tuple[int, torch.Tensor] | None = None

    @property
    def tokens(self) -> list[int]:
        """The sequence the cache currently holds."""
        return list(self._tokens)

    def common_prefix(self, ids: Sequence[int]) -> int:
        """Length of the longest common prefix of the cached sequence and ``ids``."""
        n = min(len(self._tokens), len(ids))
        i = 0
        while i < n and self._tokens[i] == ids[i]:
            i += 1
        return i

    def logits(
        self, context: Sequence[int], block: Sequence[int] = (), *, keep_row: bool = False
    ) -> torch.Tensor:
        """Logits at the end of ``context`` and after each token of ``block``, in one pass.

        Args:
            context: the sequence so far (non-empty).
            block: tokens to score on top of it (e.g. a draft).
            keep_row: keep row 0, so that a later call on ``context`` alone, made after
                others that grew the sequence past it, returns it as computed instead of
                computing the last token again (the same numbers, read twice).

        Returns:
            ``[1 + len(block), vocab]`` float32 logits: row 0 predicts the token after
            ``context``; row i predicts the token after ``block[i-1]``.
        """
        if not context:
            raise ValueError("context must hold at least one token")
        full = [*context, *block]
        with self._lock:
            kept = self._kept_row(context, block)
            if kept is not None:
                return kept
            lcp = self.common_prefix(full)
            # Re-feed at least the last context token: its logits are row 0.
            keep = min(lcp, len(context) - 1)
            cache = self._cache
            if cache is not None and keep < len(self._tokens):
                cache = self.backend.crop(cache, keep) if keep > 0 else None
                if cache is None:
                    keep = 0
            if cache is None:
                keep = 0
            # Only row 0 and the block's rows are asked for: the output layer skips the rest.
            rows = len(block) + 1
            out, cache = self.backend.forward_tail(full[keep:], cache, rows)
            self._cache = cache
            self._tokens = full
            self.tokens_computed += len(full) - keep
            if self._kept is not None and keep <= self._kept[0]:
                self._kept = None  # its position was computed again
            if keep_row:
                self._kept = (len(context) - 1, out[0].clone())
        assert out.shape[0] == rows
        return out

    def _kept_row(self, context: Sequence[int], block: Sequence[int]) -> torch.Tensor | None:
        """The kept row for ``context`` when the cache still holds it, the cache cut back to
        ``context``; else ``None``."""
        if block or self._kept is None or self._kept[0] != len(context) - 1:
            return None
        if self.common_prefix(context) < len(context) or self._cache is None:
            return None
        cache = self.backend.crop(self._cache, len(context))
        if cache is None:
            return None
        self._cache, self._tokens = cache, list(context)
        return self._kept[1].unsqueeze(0).clone()

    def reset(self) -> None:
        """Drop the cache."""
        with self._lock:
            self._tokens = []
            self._cache = None
            self._kept = None
