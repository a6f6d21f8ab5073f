"""The default memory store: per-user, encrypted memories in chromadb (embedded or a server)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from specsteer._errors import ConfigurationError
from specsteer._home import specsteer_home
from specsteer.memory._base import BaseMemoryStore, Vectors, Where
from specsteer.memory._chroma_client import open_client, wrap_backend
from specsteer.memory._collections import UserCollections
from specsteer.memory._crypto import UserKeys
from specsteer.memory._embedder import Embedder
from specsteer.memory._filters import translate_where
from specsteer.memory._persona import Persona
from specsteer.memory._types import Memory, SearchHit
from specsteer.memory._vacuum import vacuum_folder
from specsteer.memory._validate import check_user_id
from specsteer.privacy import Keyring

__all__ = ["MemoryStore"]

_PAGE = 2000
#: The collection metadata field holding the sealed persona.
_PERSONA = "_p"
Row = dict[str, Any]


class MemoryStore(BaseMemoryStore):
    """Per-user private memories in chromadb, encrypted at rest, searchable by meaning.

    One chromadb collection per user, named by a keyed hash of the user id, so a query can only
    ever reach that user's rows; every row's text and metadata are sealed (AES-256-GCM) under a
    key derived from the user's data key in the keyring, bound to the collection and row id.

    Embedded by default (chromadb ``PersistentClient`` under ``specsteer_home()/memory``); pass
    ``url=`` to use a chromadb server instead (``chroma run --path DIR --port N``). Telemetry is
    off on every client. Safe to share between threads of one process (one lock serializes
    store access; embedding runs outside it).

    Args:
        path: Folder of the embedded store; default ``specsteer_home() / "memory"``.
        url: A chromadb server, e.g. ``"http://127.0.0.1:8000"``; excludes ``path``.
        headers: Extra HTTP headers for the server (say, an auth token).
        embedder: Turns texts into vectors; default the bundled all-MiniLM-L6-v2 on the CPU.
        keyring: Source of the per-user data keys; default ``Keyring()`` under the state root.
        max_text_chars: Longest memory accepted by :meth:`add`.
        batch_size: Texts embedded and written per batch in bulk ingest.
        clock: Returns the current Unix time; replace it to test TTLs.

    Raises:
        ConfigurationError: Both ``path`` and ``url``, or a malformed ``url``.
        MissingDependencyError: chromadb is not installed.
        MemoryStoreError: The store cannot be opened.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        embedder: Embedder | None = None,
        keyring: Keyring | None = None,
        max_text_chars: int = 8000,
        batch_size: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if path is not None and url is not None:
            raise ConfigurationError(
                "pass either path= (embedded store) or url= (server), not both"
            )
        if embedder is None:
            from specsteer.memory._sentence import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder()
        super().__init__(
            embedder=embedder, max_text_chars=max_text_chars, batch_size=batch_size, clock=clock
        )
        self._keyring = keyring if keyring is not None else Keyring()
        self._url = url
        self._path = None if url is not None else Path(path or specsteer_home() / "memory")
        self._client = open_client(self._path, url, headers)
        self._users = UserCollections(self._client, self._keyring, embedder.name, self._hint())

    @property
    def path(self) -> Path | None:
        """Folder of the embedded store (None for a server)."""
        return self._path

    @property
    def keyring(self) -> Keyring:
        """The keyring holding the per-user data keys."""
        return self._keyring

    def _hint(self) -> str:
        if self._url is not None:
            return f"check the chromadb server at {self._url} is running and reachable"
        return f"check the store folder {self._path} is intact and writable"

    # -- the seam's primitives -------------------------------------------------------------------

    def _insert(self, user_id: str, new: Sequence[Memory], vectors: Vectors) -> list[Memory]:
        with self._lock:
            keys, col = self._users.open_for_write(user_id)
            tags = [keys.content_tag(m.text) for m in new]
            existing, stale = self._live_by_tag(keys, col, tags)
            result: list[Memory] = []
            keep: list[int] = []
            for i, (memory, tag) in enumerate(zip(new, tags, strict=True)):
                if tag not in existing:
                    existing[tag] = memory
                    keep.append(i)
                result.append(existing[tag])
            with wrap_backend("write memories", self._hint()):
                if stale:
                    col.delete(ids=stale)
                if keep:
                    col.add(
                        ids=[new[i].id for i in keep],
                        embeddings=keys.turn(vectors[keep]),
                        metadatas=[keys.seal_row(new[i]) for i in keep],
                    )
            return result

    def _live_by_tag(
        self, keys: UserKeys, col: Any, tags: list[str]
    ) -> tuple[dict[str, Memory], list[str]]:
        """Stored memories with these content tags: the live ones by tag, and expired ids."""
        with wrap_backend("look up duplicates", self._hint()):
            found = col.get(where={"_h": {"$in": sorted(set(tags))}}, include=["metadatas"])
        now = self._clock()
        live: dict[str, Memory] = {}
        stale: list[str] = []
        for mid, row in zip(found["ids"], found["metadatas"], strict=True):
            memory = keys.open_row(mid, row)
            if memory.live_at(now):
                live.setdefault(str(row["_h"]), memory)
            else:
                stale.append(mid)
        return live, stale

    def _put(self, user_id: str, memories: Sequence[Memory], vectors: Vectors) -> None:
        with self._lock:
            keys, col = self._users.open_for_write(user_id)
            ids = [m.id for m in memories]
            with wrap_backend("write memories", self._hint()):
                found = col.get(ids=ids, include=["metadatas"])
                old: dict[str, Row] = dict(zip(found["ids"], found["metadatas"], strict=True))
                rows = [_replacing(keys.seal_row(m), old.get(m.id)) for m in memories]
                col.upsert(ids=ids, embeddings=keys.turn(vectors), metadatas=rows)

    def _get(self, user_id: str, memory_id: str) -> Memory | None:
        with self._lock:
            opened = self._users.open(user_id)
            if opened is None:
                return None
            keys, col = opened
            with wrap_backend("read a memory", self._hint()):
                found = col.get(ids=[memory_id], include=["metadatas"])
            if not found["ids"]:
                return None
            memory = keys.open_row(memory_id, found["metadatas"][0])
            return memory if memory.live_at(self._clock()) else None

    def _open_filtered(
        self, user_id: str, where: Where | None
    ) -> tuple[UserKeys, Any, Row | None] | None:
        """The user's keys, collection, and ``where`` as a tag filter; None without a collection."""
        opened = self._users.open(user_id)
        if opened is None:
            return None
        keys, col = opened
        return keys, col, translate_where(keys, where) if where is not None else None

    def _list(self, user_id: str, where: Where | None) -> list[Memory]:
        with self._lock:
            opened = self._open_filtered(user_id, where)
            if opened is None:
                return []
            keys, col, chroma_where = opened
            now = self._clock()
            out: list[Memory] = []
            with wrap_backend("list memories", self._hint()):
                for mid, row in _all_rows(col, chroma_where):
                    memory = keys.open_row(mid, row)
                    if memory.live_at(now):
                        out.append(memory)
            return out

    def _nearest(
        self, user_id: str, query: Vectors, k: int, where: Where | None, floor: float | None
    ) -> list[SearchHit]:
        with self._lock:
            opened = self._open_filtered(user_id, where)
            if opened is None:
                return []
            keys, col, chroma_where = opened
            n = k
            while True:
                hits, expired, done = self._query(keys, col, query, n, chroma_where, k, floor)
                # Expired rows took places in this page: ask for more, unless there are no more.
                if done:
                    break
                n *= 2
            if expired:
                with wrap_backend("purge expired memories", self._hint()):
                    col.delete(ids=expired)
            return hits

    def _query(
        self,
        keys: UserKeys,
        col: Any,
        query: Vectors,
        n: int,
        chroma_where: Row | None,
        k: int,
        floor: float | None,
    ) -> tuple[list[SearchHit], list[str], bool]:
        """One page of ``n`` nearest rows: (live hits up to k, expired ids, whether to stop)."""
        with wrap_backend("search", self._hint()):
            res = col.query(
                query_embeddings=keys.turn(query),
                n_results=n,
                where=chroma_where,
                include=["metadatas", "distances"],
            )
        ids, rows, dists = res["ids"][0], res["metadatas"][0], res["distances"][0]
        now = self._clock()
        hits: list[SearchHit] = []
        expired: list[str] = []
        for mid, row, dist in zip(ids, rows, dists, strict=True):
            score = 1.0 - float(dist)
            if floor is not None and score < floor:
                return hits, expired, True
            memory = keys.open_row(mid, row)
            if not memory.live_at(now):
                expired.append(mid)
                continue
            hits.append(SearchHit(memory, score))
            if len(hits) == k:
                return hits, expired, True
        return hits, expired, len(ids) < n

    def _delete(self, user_id: str, memory_id: str) -> bool:
        with self._lock:
            opened = self._users.open(user_id)
            if opened is None:
                return False
            col = opened[1]
            with wrap_backend("delete a memory", self._hint()):
                if not col.get(ids=[memory_id], include=[])["ids"]:
                    return False
                col.delete(ids=[memory_id])
            return True

    def _get_persona(self, user_id: str) -> Persona | None:
        with self._lock:
            opened = self._users.open(user_id)
            if opened is None:
                return None
            keys = opened[0]
            blob = self._collection_metadata(keys.collection).get(_PERSONA)
            return Persona.loads(keys.open_persona(str(blob))) if blob else None

    def _put_persona(self, user_id: str, persona: Persona | None) -> None:
        # Sealed in the user's collection metadata: it lives and dies with their memories.
        with self._lock:
            keys, col = self._users.open_for_write(user_id)
            metadata = self._collection_metadata(keys.collection)
            metadata.pop(_PERSONA, None)
            if persona is not None:
                metadata[_PERSONA] = keys.seal_persona(persona.dumps())
            with wrap_backend("write the persona", self._hint()):
                col.modify(metadata=metadata)

    def _collection_metadata(self, name: str) -> dict[str, Any]:
        """A collection's metadata as stored now (another process may have changed it)."""
        with wrap_backend("read the persona", self._hint()):
            fresh = self._client.get_collection(name, embedding_function=None)
        return dict(fresh.metadata or {})

    def _forget(self, user_id: str, purge_vectors: bool) -> None:
        """Crypto-shred the user (destroy their data key), then delete their collection.

        From the moment the key is destroyed every sealed text and metadata value of theirs is
        unreadable, wherever chromadb keeps copies (deleted rows linger in its SQLite file and
        index folders), and their stored vectors, turned by a key derived from it, can no
        longer be compared with a guess. With ``purge_vectors`` an embedded store is also
        vacuumed (:meth:`vacuum`), so the vectors leave the disk too. Against a server the
        server's operator runs ``chroma vacuum``.
        """
        with self._lock:
            self._keyring.destroy(user_id)
            self._users.drop(user_id)
            if purge_vectors:
                self.vacuum()

    def _reinstate(self, user_id: str) -> None:
        with self._lock:
            if not self._keyring.is_forgotten(user_id):
                return
            self._keyring.forget_tombstone(user_id)
            # Finishes a forget cut short before its collection was deleted: rows sealed under
            # the destroyed key must not sit beside the fresh one.
            self._users.drop(user_id)

    def _known(self, user_id: str) -> bool:
        with self._lock:
            return (
                self._keyring.has_key(user_id)
                or self._keyring.is_forgotten(user_id)
                or self._users.exists(user_id)
            )

    def _count(self, user_id: str) -> int:
        self.purge_expired(user_id)
        with self._lock:
            opened = self._users.open(user_id)
            if opened is None:
                return 0
            with wrap_backend("count memories", self._hint()):
                return int(opened[1].count())

    # -- maintenance -----------------------------------------------------------------------------

    def purge_expired(self, user_id: str | None = None) -> int:
        """Delete expired memories now (of one user, or of every user when None).

        Expired memories are never returned either way; this reclaims their space.

        Returns:
            How many were deleted.
        """
        if user_id is not None:
            check_user_id(user_id)
        with self._lock:
            cols = self._expiring_collections(user_id)
            where = {"$and": [{"_e": {"$gt": 0.0}}, {"_e": {"$lte": self._clock()}}]}
            total = 0
            with wrap_backend("purge expired memories", self._hint()):
                for col in cols:
                    ids = col.get(where=where, include=[])["ids"]
                    if ids:
                        col.delete(ids=ids)
                        total += len(ids)
            return total

    def _expiring_collections(self, user_id: str | None) -> list[Any]:
        if user_id is not None:
            opened = self._users.open(user_id)
            return [] if opened is None else [opened[1]]
        with wrap_backend("list collections", self._hint()):
            return [c for c in self._client.list_collections() if c.name.startswith("u-")]

    def vacuum(self) -> None:
        """Rebuild the embedded store's SQLite file and drop index folders no collection uses.

        Removes the residue of deleted rows and collections (free pages, orphaned HNSW files).
        Run it when no other process uses the store. A no-op against a server.

        Raises:
            MemoryStoreError: The database is busy or unreadable; the message says what to do.
        """
        if self._path is None:
            return
        with self._lock:
            vacuum_folder(self._path)

    def close(self) -> None:
        """Drop cached handles and keys. The store stays on disk; open it again at any time."""
        with self._lock:
            self._users.clear()

    def __enter__(self) -> MemoryStore:
        return self

    def __repr__(self) -> str:
        where = self._url if self._url is not None else str(self._path)
        return f"MemoryStore({where!r}, embedder={self._embedder.name!r})"


def _replacing(row: Row, old: Row | None) -> Row:
    """``row``, plus None for every field of ``old`` it lacks: chromadb merges metadata on
    upsert, and None removes a field (so the old metadata's filter tags go with it)."""
    out: Row = dict(row)
    for field in old or {}:
        out.setdefault(field, None)
    return out


def _all_rows(col: Any, where: Row | None) -> list[tuple[str, Row]]:
    """Every row of a collection matching ``where``, fetched in pages."""
    out: list[tuple[str, Row]] = []
    offset = 0
    while True:
        page = col.get(where=where, include=["metadatas"], limit=_PAGE, offset=offset)
        out.extend(zip(page["ids"], page["metadatas"], strict=True))
        if len(page["ids"]) < _PAGE:
            return out
        offset += _PAGE
