"""How a memory is sealed into a chromadb row, and the keyed tags that stand in for plaintext.

Per user, two keys are derived (HKDF-SHA256) from the user's data key in the keyring:

- the **seal key**, AES-256-GCM, encrypts one JSON blob per row holding the text, the metadata
  and the timestamps; the associated data binds the blob to its collection and row id, so a
  blob copied to another row or another user's collection does not open;
- the **tag key**, HMAC-SHA256, makes the tags chromadb can compare without seeing plaintext:
  the content tag (de-duplication) and one tag per metadata key/value (equality filters);
- the **vector key** draws the orthogonal matrix that turns the user's embedding vectors before
  chromadb stores them, and every query vector the same way (:mod:`._rotation`).

Destroying the data key (forget-user) makes every blob unreadable, every tag unlinkable and every
stored vector unturnable.
Collection names come from a device-wide naming key, so the user id never appears in chromadb.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from specsteer.memory._errors import CorruptedMemoryError
from specsteer.memory._rotation import rotation, turn
from specsteer.memory._types import Memory, MetadataValue
from specsteer.privacy import DecryptionError, open_sealed, seal

__all__ = [
    "FORMAT",
    "TURNED_ROW",
    "UserKeys",
    "canonical_value",
    "collection_name",
    "normalize_text",
]

FORMAT = 1
#: The row field that says its vector is turned by the vector key (every row written now).
TURNED_ROW = "_t"
_SPACE = re.compile(r"\s+")


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def normalize_text(text: str) -> str:
    """The form two texts share when they count as the same memory (NFKC, case, spacing)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def canonical_value(value: MetadataValue) -> str:
    """Encode a metadata value so equal values (1 and 1.0, but not True) tag the same."""
    if isinstance(value, bool):
        return "b:" + ("1" if value else "0")
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer():
            return f"n:{int(value)}"
        return f"n:{value!r}"
    return "s:" + value


def collection_name(naming_key: bytes, user_id: str) -> str:
    """The chromadb collection of a user: a keyed hash, so the id is not stored in clear."""
    digest = hmac.new(
        _hkdf(naming_key, b"specsteer-memory/collection"), user_id.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    return "u-" + digest[:40]


@dataclass(frozen=True)
class UserKeys:
    """The keys of one user's collection, derived from their data key."""

    collection: str
    seal_key: bytes
    tag_key: bytes
    vector_key: bytes
    _rotations: dict[int, npt.NDArray[np.float64]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def derive(cls, data_key: bytes, collection: str) -> UserKeys:
        """Derive both keys from the keyring's data key for this user."""
        return cls(
            collection=collection,
            seal_key=_hkdf(data_key, b"specsteer-memory/seal/v1"),
            tag_key=_hkdf(data_key, b"specsteer-memory/tag/v1"),
            vector_key=_hkdf(data_key, b"specsteer-memory/vectors/v1"),
        )

    def turn(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Embedding vectors (rows) as this user's collection stores and searches them."""
        dim = int(vectors.shape[-1])
        if dim not in self._rotations:
            self._rotations[dim] = rotation(self.vector_key, dim)
        return turn(self._rotations[dim], vectors)

    def _mac(self, label: str, data: str) -> str:
        return hmac.new(self.tag_key, f"{label}\0{data}".encode(), hashlib.sha256).hexdigest()

    def content_tag(self, text: str) -> str:
        """Tag of a memory's normalized text, for de-duplication."""
        return self._mac("content", normalize_text(text))[:32]

    def key_field(self, key: str) -> str:
        """The chromadb metadata field that holds the tag of metadata key ``key``."""
        return "f" + self._mac("key", key)[:20]

    def value_tag(self, key: str, value: MetadataValue) -> str:
        """Tag of one metadata key/value pair, for equality filters."""
        return self._mac("value", json.dumps([key, canonical_value(value)]))[:24]

    def _aad(self, memory_id: str) -> bytes:
        return f"specsteer-memory/v{FORMAT}/{self.collection}/{memory_id}".encode()

    def seal_row(self, memory: Memory) -> dict[str, str | int | float | bool]:
        """Build the chromadb metadata of one row: sealed blob, content tag, filter tags, expiry."""
        blob = json.dumps(
            {
                "text": memory.text,
                "metadata": dict(memory.metadata),
                "created_at": memory.created_at,
                "updated_at": memory.updated_at,
                "expires_at": memory.expires_at,
            },
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
        row: dict[str, str | int | float | bool] = {
            "_v": FORMAT,
            "_s": base64.b64encode(seal(self.seal_key, blob, self._aad(memory.id))).decode("ascii"),
            "_h": self.content_tag(memory.text),
            # Expiry stays in clear so expired rows can be purged without the key.
            "_e": float(memory.expires_at) if memory.expires_at is not None else 0.0,
            TURNED_ROW: True,
        }
        for key, value in memory.metadata.items():
            row[self.key_field(key)] = self.value_tag(key, value)
        return row

    def seal_persona(self, persona_json: str) -> str:
        """Seal the user's persona (JSON text) for the collection's metadata, bound to it."""
        aad = f"specsteer-memory/v{FORMAT}/{self.collection}/persona".encode()
        return base64.b64encode(seal(self.seal_key, persona_json.encode("utf-8"), aad)).decode()

    def open_persona(self, blob: str) -> str:
        """Open what :meth:`seal_persona` sealed.

        Raises:
            CorruptedMemoryError: The blob was altered or sealed under another key.
        """
        aad = f"specsteer-memory/v{FORMAT}/{self.collection}/persona".encode()
        try:
            return open_sealed(self.seal_key, base64.b64decode(blob, validate=True), aad).decode()
        except (DecryptionError, TypeError, ValueError) as e:
            raise CorruptedMemoryError(
                f"the persona does not decrypt ({type(e).__name__}): it was altered on disk or "
                "sealed under another key; set it again with set_persona(user_id, Persona(...))"
            ) from e

    def open_row(self, memory_id: str, row: Any) -> Memory:
        """Decrypt one row made by :meth:`seal_row`.

        Raises:
            CorruptedMemoryError: The row was altered, truncated, or sealed under another key.
        """
        try:
            blob = base64.b64decode(row["_s"], validate=True)
            doc = json.loads(open_sealed(self.seal_key, blob, self._aad(memory_id)))
            expires = doc["expires_at"]
            return Memory(
                id=memory_id,
                text=str(doc["text"]),
                metadata=dict(doc["metadata"]),
                created_at=float(doc["created_at"]),
                updated_at=float(doc["updated_at"]),
                expires_at=None if expires is None else float(expires),
            )
        except (DecryptionError, KeyError, TypeError, ValueError) as e:
            raise CorruptedMemoryError(
                f"memory {memory_id!r} does not decrypt ({type(e).__name__}): the row was altered "
                "on disk or sealed under another key; delete it with MemoryStore.delete(user_id, "
                "memory_id) or restore the store from a backup"
            ) from e


def finite(value: float) -> bool:
    """Whether a float is neither NaN nor infinite."""
    return math.isfinite(value)
