"""A keyed rotation of a user's embedding vectors: stored, they say nothing without the key.

Search needs vectors chromadb can compare, so they cannot be sealed like the rows. They are
stored turned by an orthogonal matrix ``Q`` drawn from the user's data key: cosine similarity
is kept exactly (``(Q a) . (Q b) = a . b``), so every search returns what it would have, while a
reader of the files who lacks the key cannot embed a guessed memory and look for its vector,
nor feed a vector to an inversion model trained on the embedder's space. Destroying the data key
(forget-user) leaves the turned vectors of every copy chromadb kept with no key to read them by.

What a rotation does not hide: the vectors' similarities to each other, and ``Q`` itself to
whoever holds many of the user's texts together with their stored vectors (about one pair per
dimension).

``Q`` comes from SHAKE-256 output (not from a library's random generator, whose streams may change
between versions), turned into Gaussian numbers and orthonormalized; the same key and dimension
give the same matrix on every machine, up to rounding.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

__all__ = ["rotation", "turn"]


def rotation(key: bytes, dim: int) -> npt.NDArray[np.float64]:
    """The ``dim`` x ``dim`` orthogonal matrix of ``key``."""
    if dim < 1:
        raise ValueError(f"vector dimension must be positive, got {dim}")
    n = dim * dim
    pairs = (n + 1) // 2
    raw = hashlib.shake_256(b"specsteer-memory/rotation\0" + key).digest(16 * pairs)
    bits = np.frombuffer(raw, dtype="<u8") >> np.uint64(11)  # 53 random bits each
    u = (bits.astype(np.float64) + 0.5) / float(1 << 53)  # in (0, 1)
    radius, angle = np.sqrt(-2.0 * np.log(u[0::2])), 2 * np.pi * u[1::2]  # Box-Muller
    gauss = np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])
    q, r = np.linalg.qr(gauss[:n].reshape(dim, dim))
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # a unique Q for the matrix (Haar-distributed)
    q.setflags(write=False)
    return q


def turn(q: npt.NDArray[np.float64], vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``vectors`` (rows) turned by the rotation ``q``, as float32."""
    if vectors.ndim != 2 or vectors.shape[1] != q.shape[0]:
        raise ValueError(f"expected [n, {q.shape[0]}] vectors, got shape {vectors.shape}")
    return (vectors.astype(np.float64) @ q.T).astype(np.float32)
