"""The ``Embedder`` seam and a deterministic hashing embedder for tests and benchmarks."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "HashEmbedder", "normalize_rows"]

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_rows(vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Return ``vectors`` as float32 with every row scaled to unit L2 norm (zero rows stay zero).

    Args:
        vectors: ``[n, dim]`` array.

    Returns:
        ``[n, dim]`` float32 array.
    """
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        raise ValueError(f"expected a [n, dim] array, got shape {out.shape}")
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


class Embedder(ABC):
    """Turns texts into unit-length vectors; cosine similarity is their dot product.

    Subclasses implement one method, :meth:`embed`. ``name`` identifies the vector space: the
    store records it and refuses to mix vectors from different embedders in one collection.
    """

    #: Identifies the vector space (model and settings); stored with every collection.
    name: str = "embedder"

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed a batch of texts.

        Args:
            texts: The texts, in order.

        Returns:
            ``[len(texts), dim]`` float32 array, each row L2-normalized.
        """

    @property
    def dim(self) -> int:
        """The vector dimension (found by embedding one probe text, then cached)."""
        cached: int | None = getattr(self, "_dim_cache", None)
        if cached is None:
            cached = int(self.embed(["dimension probe"]).shape[1])
            self._dim_cache = cached
        return cached

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one text; returns a ``[dim]`` float32 vector."""
        row: npt.NDArray[np.float32] = self.embed([text])[0]
        return row


class HashEmbedder(Embedder):
    """A deterministic fake embedder: a hashed bag of words and character trigrams.

    Texts that share words or spellings land close together, so search behaves plausibly,
    with no model to load. Use it in tests and to measure the store without the embedder's cost.

    Args:
        dim: Vector dimension (384 matches all-MiniLM-L6-v2).
        ngram: Character n-gram length added next to whole words (0 for words only).
    """

    def __init__(self, dim: int = 384, *, ngram: int = 3) -> None:
        if not isinstance(dim, int) or dim < 8:
            raise ValueError("dim must be an int >= 8")
        self._dim = dim
        self._ngram = ngram
        self.name = f"hash-{dim}-{ngram}"

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        norm = unicodedata.normalize("NFKC", text).casefold()
        words = _WORD.findall(norm)
        feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        if self._ngram > 0:
            for w in words:
                padded = f"#{w}#"
                for i in range(max(1, len(padded) - self._ngram + 1)):
                    feats.append(("g:" + padded[i : i + self._ngram], 0.5))
        if not feats:  # punctuation-only text still gets a stable, non-zero vector
            feats.append(("raw:" + norm, 1.0))
        return feats

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed texts by hashing their features into ``dim`` signed buckets."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat, weight in self._features(text):
                digest = hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                out[row, (value >> 1) % self._dim] += sign * weight
        return normalize_rows(out)
