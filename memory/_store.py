"""The memory store: per-user, encrypted memories in chromadb (embedded or a server)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from specsteer._errors import (
    ConfigurationError,
    InvalidInputError,
    MemoryStoreError,
    MissingDependencyError,
    SpecSteerError,
)
from specsteer._home import specsteer_home
from specsteer.memory._crypto import FORMAT, UserKeys, collection_name
from specsteer.memory._embedder import Embedder
from specsteer.memory._errors import MemoryNotFoundError, UserForgottenError
from specsteer.memory._filters import translate_where
from specsteer.memory._ingest import chunk_note, read_notes, read_transcript
from specsteer.memory._types import Memory, MemoryInput, MetadataValue, SearchHit
from specsteer.memory._validate import (
    RESERVED_USER_ID,
    check_k,
    check_memory_id,
    check_metadata,
    check_min_score,
    check_text,
    check_ttl,
    check_user_id,
)
from specsteer.privacy import KeyDestroyedError, KeyNotFoundError, Keyring

__all__ = ["EXPORT_FORMAT", "KEEP", "MemoryStore"]

logger = logging.getLogger(__name__)

#: First line of an export file, so an import can tell it what it reads.
EXPORT_FORMAT: Final = {"format": "specsteer-memory-export", "version": 1}
_PAGE = 2000
# Validates a filter's shape before the user's keys are known (say, for a user with no data).
_SHAPE_KEYS = UserKeys.derive(bytes(32), "u-shape-check")
_UUID_DIR = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class _Keep:
    """Sentinel: leave a field as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


def _chromadb() -> Any:
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError as e:
        raise MissingDependencyError("chromadb", extra="memory", purpose="the memory store") from e
    return chromadb, Settings


@contextlib.contextmanager
def _wrap_backend(action: str, hint: str) -> Iterator[None]:
    """Turn chromadb failures into MemoryStoreError, keeping our own errors as they are."""
    try:
        yield
    except SpecSteerError:
        raise
    except Exception as e:
        raise MemoryStoreError(
            f"the vector store failed to {action} ({type(e).__name__}); {hint}"
        ) from e


class _Progress:
    """A rich progress bar on stderr, shown only when asked for and stderr is a terminal."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self._bar: Any = None
        self._task: Any = None
        if enabled and total > 0 and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class MemoryStore:
    """Per-user private memories, encrypted at rest, searchable by meaning.

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
        if not isinstance(max_text_chars, int) or max_text_chars < 1:
            raise ConfigurationError("max_text_chars must be a positive int")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError("batch_size must be a positive int")
        if embedder is None:
            from specsteer.memory._sentence import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder()
        self._embedder = embedder
        self._keyring = keyring if keyring is not None else Keyring()
        self._max_chars = max_text_chars
        self._batch = batch_size
        self._clock = clock
        self._lock = threading.RLock()
        self._collections: dict[str, Any] = {}
        self._keys: dict[str, tuple[bytes, UserKeys]] = {}
        self._naming_key: bytes | None = None
        chromadb, settings_cls = _chromadb()
        settings = settings_cls(anonymized_telemetry=False, allow_reset=False)
        if url is None:
            self._path: Path | None = (
                Path(path) if path is not None else specsteer_home() / "memory"
            )
            self._url: str | None = None
            self._path.mkdir(parents=True, exist_ok=True, mode=0o700)
            with _wrap_backend(
                f"open {self._path}", "check the folder is writable and not a non-chromadb folder"
            ):
                self._client = chromadb.PersistentClient(path=str(self._path), settings=settings)
        else:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"url {url!r} is not an http(s) URL; use e.g. 'http://127.0.0.1:8000'"
                )
            self._path = None
            self._url = url
            port = parts.port or (443 if parts.scheme == "https" else 8000)
            with _wrap_backend(
                f"connect to {url}", "start the server with: chroma run --path DIR --port N"
            ):
                self._client = chromadb.HttpClient(
                    host=parts.hostname,
                    port=port,
                    ssl=parts.scheme == "https",
                    headers=dict(headers or {}),
                    settings=settings,
                )

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """Folder of the embedded store (None for a server)."""
        return self._path

    @property
    def embedder(self) -> Embedder:
        """The embedder in use."""
        return self._embedder

    @property
    def keyring(self) -> Keyring:
        """The keyring holding the per-user data keys."""
        return self._keyring

    def _hint(self) -> str:
        if self._url is not None:
            return f"check the chromadb server at {self._url} is running and reachable"
        return f"check the store folder {self._path} is intact and writable"

    def _collection_for(self, user_id: str) -> str:
        if self._naming_key is None:
            self._naming_key = self._keyring.data_key(RESERVED_USER_ID)
        return collection_name(self._naming_key, user_id)

    def _user_keys(self, user_id: str, *, create: bool) -> UserKeys | None:
        """The user's derived keys; None when the user has none (never stored, or forgotten)."""
        if self._keyring.is_forgotten(user_id):
            if create:
                raise UserForgottenError(user_id)
            return None
        try:
            data_key = self._keyring.data_key(user_id, create=create)
        except KeyNotFoundError:
            return None
        except KeyDestroyedError as e:  # forgotten between the two calls
            if create:
                raise UserForgottenError(user_id) from e
            return None
        cached = self._keys.get(user_id)
        if cached is not None and cached[0] == data_key:
            return cached[1]
        keys = UserKeys.derive(data_key, self._collection_for(user_id))
        self._keys[user_id] = (data_key, keys)
        return keys

    def _collection(self, keys: UserKeys, *, create: bool) -> Any:
        col = self._collections.get(keys.collection)
        if col is not None:
            return col
        chromadb, _ = _chromadb()
        with _wrap_backend("open a collection", self._hint()):
            try:
                col = self._client.get_collection(keys.collection, embedding_function=None)
            except chromadb.errors.NotFoundError:
                if not create:
                    return None
                try:
                    col = self._client.create_collection(
                        keys.collection,
                        embedding_function=None,
                        configuration={"hnsw": {"space": "cosine"}},
                        metadata={"specsteer_format": FORMAT, "embedder": self._embedder.name},
                    )
                except Exception:  # another process created it first
                    col = self._client.get_collection(keys.collection, embedding_function=None)
        stored = (col.metadata or {}).get("embedder")
        if stored is not None and stored != self._embedder.name:
            raise ConfigurationError(
                f"this user's memories were embedded with {stored!r} but the store was opened "
                f"with {self._embedder.name!r}; open it with the same embedder, or export with "
                "the old one and import with the new one"
            )
        self._collections[keys.collection] = col
        return col

    def _open(self, user_id: str, *, create: bool) -> tuple[UserKeys, Any] | None:
        keys = self._user_keys(user_id, create=create)
        if keys is None:
            return None
        col = self._collection(keys, create=create)
        return None if col is None else (keys, col)

    def _embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._embedder.embed(texts)
        if vectors.shape[0] != len(texts) or vectors.ndim != 2:
            raise MemoryStoreError(
                f"embedder {self._embedder.name!r} returned shape {vectors.shape} for "
                f"{len(texts)} texts; fix the embedder to return [n, dim]"
            )
        return vectors

    def _live(self, memory: Memory, now: float) -> bool:
        return memory.expires_at is None or memory.expires_at > now

    def _expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    # -- writes ------------------------------------------------------------------------------

    def add(
        self,
        user_id: str,
        text: str,
        metadata: Mapping[str, MetadataValue] | None = None,
        *,
        ttl: float | timedelta | None = None,
    ) -> Memory:
        """Remember one text for a user.

        Identical text (same after Unicode normalization, case folding and collapsing
        whitespace) is stored once: adding it again returns the memory already stored, unchanged.
        The write is durable when this returns.

        Args:
            user_id: Whose memory it is.
            text: What to remember (non-blank, at most ``max_text_chars`` characters).
            metadata: Caller data kept with it (str keys; str, int, float or bool values),
                encrypted, and filterable by equality in :meth:`search`.
            ttl: Seconds (or a timedelta) until it expires; None keeps it until deleted.

        Returns:
            The stored memory (or the identical one stored earlier).

        Raises:
            InvalidInputError: Bad user id, text, metadata or ttl.
            UserForgottenError: The user was forgotten; see :meth:`reinstate_user`.
        """
        return self.add_many(user_id, [MemoryInput(text, metadata, None)], ttl=ttl, progress=False)[
            0
        ]

    def add_many(
        self,
        user_id: str,
        items: Iterable[str | MemoryInput],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
        ttl: float | timedelta | None = None,
        progress: bool = True,
        on_batch: Callable[[Sequence[Memory]], None] | None = None,
    ) -> list[Memory]:
        """Remember many texts for a user, embedding and writing them in batches.

        Every item is validated before anything is written. Each batch is one write; when
        ``on_batch`` is called for it, that batch is durable (a crash later keeps it).

        Args:
            user_id: Whose memories they are.
            items: Texts, or :class:`MemoryInput` for per-item metadata and TTL.
            metadata: Metadata for every item (an item's own metadata wins on a clash).
            ttl: Default TTL for items without their own.
            progress: Show a progress bar on stderr when it is a terminal.
            on_batch: Called after each batch is written, with that batch's memories.

        Returns:
            One memory per item, in order (duplicates map to the memory already stored).

        Raises:
            InvalidInputError: A bad item; the message names its index.
            UserForgottenError: The user was forgotten; see :meth:`reinstate_user`.
        """
        check_user_id(user_id)
        base_meta = check_metadata(metadata)
        base_ttl = check_ttl(ttl)
        if isinstance(items, str | MemoryInput):
            raise InvalidInputError("items must be a list of texts; for one text use add()")
        prepared: list[tuple[str, dict[str, MetadataValue], float | None]] = []
        for i, item in enumerate(items):
            try:
                if isinstance(item, MemoryInput):
                    text = check_text(item.text, self._max_chars)
                    meta = {**base_meta, **check_metadata(item.metadata)}
                    item_ttl = check_ttl(item.ttl) if item.ttl is not None else base_ttl
                else:
                    text = check_text(item, self._max_chars)
                    meta, item_ttl = base_meta, base_ttl
            except InvalidInputError as e:
                raise InvalidInputError(f"item {i}: {e}") from e
            prepared.append((text, meta, item_ttl))
        out: list[Memory] = []
        with _Progress(progress, len(prepared), "Storing memories") as bar:
            for start in range(0, len(prepared), self._batch):
                batch = prepared[start : start + self._batch]
                vectors = self._embed([t for t, _, _ in batch])
                written = self._write_batch(user_id, batch, vectors)
                out.extend(written)
                if on_batch is not None:
                    on_batch(written)
                bar.advance(len(batch))
        return out

    def _write_batch(
        self,
        user_id: str,
        batch: Sequence[tuple[str, dict[str, MetadataValue], float | None]],
        vectors: npt.NDArray[np.float32],
    ) -> list[Memory]:
        with self._lock:
            opened = self._open(user_id, create=True)
            assert opened is not None
            keys, col = opened
            now = self._clock()
            tags = [keys.content_tag(text) for text, _, _ in batch]
            existing: dict[str, Memory] = {}
            stale: list[str] = []
            with _wrap_backend("look up duplicates", self._hint()):
                found = col.get(where={"_h": {"$in": sorted(set(tags))}}, include=["metadatas"])
            for mid, row in zip(found["ids"], found["metadatas"], strict=True):
                memory = keys.open_row(mid, row)
                if self._live(memory, now):
                    existing.setdefault(str(row["_h"]), memory)
                else:
                    stale.append(mid)
            ids: list[str] = []
            rows: list[dict[str, str | int | float | bool]] = []
            keep: list[int] = []
            result: list[Memory] = []
            for i, ((text, meta, ttl), tag) in enumerate(zip(batch, tags, strict=True)):
                if tag in existing:
                    result.append(existing[tag])
                    continue
                memory = Memory(
                    id=uuid.uuid4().hex,
                    text=text,
                    metadata=dict(meta),
                    created_at=now,
                    updated_at=now,
                    expires_at=self._expiry(ttl, now),
                )
                existing[tag] = memory
                ids.append(memory.id)
                rows.append(keys.seal_row(memory))
                keep.append(i)
                result.append(memory)
            with _wrap_backend("write memories", self._hint()):
                if stale:
                    col.delete(ids=stale)
                if ids:
                    col.add(ids=ids, embeddings=vectors[keep], metadatas=rows)
            return result

    def update(
        self,
        user_id: str,
        memory_id: str,
        *,
        text: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
        ttl: float | timedelta | _Keep | None = KEEP,
    ) -> Memory:
        """Change a memory's text, metadata or expiry; the id and creation time stay.

        Args:
            user_id: Whose memory it is.
            memory_id: Which memory.
            text: New text (re-embedded), or None to keep it.
            metadata: New metadata replacing the old (``{}`` clears it), or None to keep it.
            ttl: New TTL from now, None for no expiry, or leave out to keep the expiry.

        Returns:
            The updated memory.

        Raises:
            MemoryNotFoundError: No live memory with that id for this user.
        """
        check_user_id(user_id)
        check_memory_id(memory_id)
        new_text = check_text(text, self._max_chars) if text is not None else None
        new_meta = check_metadata(metadata) if metadata is not None else None
        new_ttl = check_ttl(ttl) if not isinstance(ttl, _Keep) else None
        vector = self._embed([new_text]) if new_text is not None else None
        with self._lock:
            opened = self._open(user_id, create=False)
            if opened is None:
                raise MemoryNotFoundError(memory_id)
            keys, col = opened
            now = self._clock()
            old_row, old = self._fetch(keys, col, memory_id, now)
            updated = replace(
                old,
                text=new_text if new_text is not None else old.text,
                metadata=new_meta if new_meta is not None else old.metadata,
                expires_at=old.expires_at if isinstance(ttl, _Keep) else self._expiry(new_ttl, now),
                updated_at=max(now, old.updated_at),
            )
            row: dict[str, Any] = dict(keys.seal_row(updated))
            for field in old_row:  # chromadb merges metadata on update; None removes a field
                row.setdefault(field, None)
            with _wrap_backend("update a memory", self._hint()):
                if vector is not None:
                    col.update(ids=[memory_id], embeddings=vector, metadatas=[row])
                else:
                    col.update(ids=[memory_id], metadatas=[row])
            return updated

    def delete(self, user_id: str, memory_id: str) -> bool:
        """Delete one memory.

        Returns:
            Whether a memory was deleted (False when the user has no such memory).
        """
        check_user_id(user_id)
        check_memory_id(memory_id)
        with self._lock:
            opened = self._open(user_id, create=False)
            if opened is None:
                return False
            _, col = opened
            with _wrap_backend("delete a memory", self._hint()):
                found = col.get(ids=[memory_id], include=[])
                if not found["ids"]:
                    return False
                col.delete(ids=[memory_id])
            return True

    def forget_user(self, user_id: str, *, purge_vectors: bool = True) -> None:
        """Forget a user completely: crypto-shred their key, then delete their collection.

        First the user's data key is destroyed in the keyring, so every sealed text and metadata
        value of theirs is unreadable from that moment, wherever chromadb keeps copies (deleted
        rows linger in its SQLite file and index folders). Then their collection is deleted.
        Other users are never touched: each user has a collection of their own.

        Embedding vectors are not encrypted (search needs them). With ``purge_vectors`` (the
        default), an embedded store is also vacuumed: SQLite is rebuilt without free pages and
        index folders no collection uses are removed, so the vectors leave the disk too. Against
        a server, the collection is deleted; the server's operator runs ``chroma vacuum``.

        After this, writes for the id fail with :class:`UserForgottenError` until
        :meth:`reinstate_user` is called.

        Raises:
            MemoryStoreError: The vacuum failed (another process holds the store); run
                :meth:`vacuum` later.
        """
        check_user_id(user_id)
        chromadb, _ = _chromadb()
        with self._lock:
            name = self._collection_for(user_id)
            self._keyring.destroy(user_id)
            self._keys.pop(user_id, None)
            self._collections.pop(name, None)
            with (
                _wrap_backend("delete the user's collection", self._hint()),
                contextlib.suppress(chromadb.errors.NotFoundError),
            ):
                self._client.delete_collection(name)
            if purge_vectors and self._path is not None:
                self.vacuum()

    def reinstate_user(self, user_id: str) -> None:
        """Let a forgotten user id store memories again (with a new key; old data stays lost).

        A no-op for a user who was never forgotten: their memories stay readable.
        """
        check_user_id(user_id)
        with self._lock:
            self._keyring.forget_tombstone(user_id)

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
            db_path = self._path / "chroma.sqlite3"
            try:
                conn = sqlite3.connect(db_path, timeout=10)
                try:
                    live = {row[0] for row in conn.execute("SELECT id FROM segments")}
                    conn.execute("VACUUM")
                finally:
                    conn.close()
            except sqlite3.Error as e:
                raise MemoryStoreError(
                    f"could not vacuum {db_path} ({e}); close other processes using the store, "
                    "then call MemoryStore.vacuum()"
                ) from e
            for entry in self._path.iterdir():
                if entry.is_dir() and _UUID_DIR.fullmatch(entry.name) and entry.name not in live:
                    for file in entry.iterdir():
                        _shred(file)
                    entry.rmdir()

    def purge_expired(self, user_id: str | None = None) -> int:
        """Delete expired memories now (of one user, or of every user when None).

        Expired memories are never returned either way; this reclaims their space.

        Returns:
            How many were deleted.
        """
        if user_id is not None:
            check_user_id(user_id)
        with self._lock:
            now = self._clock()
            if user_id is not None:
                opened = self._open(user_id, create=False)
                cols = [] if opened is None else [opened[1]]
            else:
                with _wrap_backend("list collections", self._hint()):
                    cols = [c for c in self._client.list_collections() if c.name.startswith("u-")]
            total = 0
            where = {"$and": [{"_e": {"$gt": 0.0}}, {"_e": {"$lte": now}}]}
            with _wrap_backend("purge expired memories", self._hint()):
                for col in cols:
                    ids = col.get(where=where, include=[])["ids"]
                    if ids:
                        col.delete(ids=ids)
                        total += len(ids)
            return total

    # -- reads -------------------------------------------------------------------------------

    def _fetch(self, keys: UserKeys, col: Any, memory_id: str, now: float) -> tuple[Any, Memory]:
        with _wrap_backend("read a memory", self._hint()):
            found = col.get(ids=[memory_id], include=["metadatas"])
        if not found["ids"]:
            raise MemoryNotFoundError(memory_id)
        row = found["metadatas"][0]
        memory = keys.open_row(memory_id, row)
        if not self._live(memory, now):
            raise MemoryNotFoundError(memory_id)
        return row, memory

    def get(self, user_id: str, memory_id: str) -> Memory:
        """Return one memory of the user.

        Raises:
            MemoryNotFoundError: No live memory with that id for this user (ids of other users'
                memories are not found either).
        """
        check_user_id(user_id)
        check_memory_id(memory_id)
        with self._lock:
            opened = self._open(user_id, create=False)
            if opened is None:
                raise MemoryNotFoundError(memory_id)
            return self._fetch(opened[0], opened[1], memory_id, self._clock())[1]

    def memories(self, user_id: str, *, where: Mapping[str, Any] | None = None) -> list[Memory]:
        """Return every live memory of the user, oldest first (optionally filtered)."""
        check_user_id(user_id)
        if where is not None:
            translate_where(_SHAPE_KEYS, where)
        with self._lock:
            opened = self._open(user_id, create=False)
            if opened is None:
                return []
            keys, col = opened
            chroma_where = translate_where(keys, where) if where is not None else None
            now = self._clock()
            out: list[Memory] = []
            offset = 0
            with _wrap_backend("list memories", self._hint()):
                while True:
                    page = col.get(
                        where=chroma_where, include=["metadatas"], limit=_PAGE, offset=offset
                    )
                    for mid, row in zip(page["ids"], page["metadatas"], strict=True):
                        memory = keys.open_row(mid, row)
                        if self._live(memory, now):
                            out.append(memory)
                    if len(page["ids"]) < _PAGE:
                        break
                    offset += _PAGE
        out.sort(key=lambda m: (m.created_at, m.id))
        return out

    def all_texts(self, user_id: str) -> list[str]:
        """Every live memory text of the user (what the egress guard scans payloads against)."""
        return [m.text for m in self.memories(user_id)]

    def count(self, user_id: str) -> int:
        """How many live memories the user has."""
        check_user_id(user_id)
        self.purge_expired(user_id)
        with self._lock:
            opened = self._open(user_id, create=False)
            if opened is None:
                return 0
            with _wrap_backend("count memories", self._hint()):
                return int(opened[1].count())

    def search(
        self,
        user_id: str,
        query: str,
        k: int = 5,
        *,
        where: Mapping[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """Find the user's memories closest in meaning to ``query``.

        Args:
            user_id: Whose memories to search; no other user's are ever reachable.
            query: The text to match.
            k: At most this many hits.
            where: Equality filter on metadata, e.g. ``{"topic": "food"}``,
                ``{"topic": {"$in": ["food", "travel"]}}``, ``{"$or": [...]}``.
            min_score: Drop hits with cosine similarity below this floor.

        Returns:
            Hits, most similar first.

        Raises:
            InvalidInputError: Bad query, k, filter or floor.
        """
        check_user_id(user_id)
        check_text(query, self._max_chars, what="query")
        check_k(k)
        floor = check_min_score(min_score)
        if where is not None:
            translate_where(_SHAPE_KEYS, where)
        qv = self._embed([query])
        with self._lock:
            opened = self._open(user_id, create=False)
            if opened is None:
                return []
            keys, col = opened
            chroma_where = translate_where(keys, where) if where is not None else None
            now = self._clock()
            hits: list[SearchHit] = []
            expired: list[str] = []
            n = k
            while True:
                with _wrap_backend("search", self._hint()):
                    res = col.query(
                        query_embeddings=qv,
                        n_results=n,
                        where=chroma_where,
                        include=["metadatas", "distances"],
                    )
                ids, rows, dists = res["ids"][0], res["metadatas"][0], res["distances"][0]
                hits, expired = [], []
                below_floor = False
                for mid, row, dist in zip(ids, rows, dists, strict=True):
                    score = 1.0 - float(dist)
                    if floor is not None and score < floor:
                        below_floor = True
                        break
                    memory = keys.open_row(mid, row)
                    if not self._live(memory, now):
                        expired.append(mid)
                        continue
                    hits.append(SearchHit(memory, score))
                    if len(hits) == k:
                        break
                # Expired rows took places in this page: ask for more, unless there are no more.
                if len(hits) >= k or below_floor or len(ids) < n:
                    break
                n *= 2
            if expired:
                with _wrap_backend("purge expired memories", self._hint()):
                    col.delete(ids=expired)
            return hits

    # -- export / import ---------------------------------------------------------------------

    def export(self, user_id: str, path: str | Path) -> int:
        """Write the user's live memories to a JSONL file, decrypted.

        The first line is a header (:data:`EXPORT_FORMAT`); each further line is one memory
        (``id``, ``text``, ``metadata``, ``created_at``, ``updated_at``, ``expires_at``).
        The file holds private text in clear: it is written with mode 0600, atomically.

        Returns:
            How many memories were written.
        """
        memories = self.memories(user_id)
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(EXPORT_FORMAT) + "\n")
            for memory in memories:
                fh.write(json.dumps(memory.to_json(), ensure_ascii=False, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return len(memories)

    def import_(self, user_id: str, path: str | Path, *, progress: bool = True) -> int:
        """Load memories from a file written by :meth:`export` (into any user).

        Ids, texts, metadata and timestamps are kept exactly; a memory whose id already exists
        for the user is replaced. Texts are re-embedded with this store's embedder.

        Returns:
            How many memories were imported.

        Raises:
            InvalidInputError: Not an export file, or a bad line (the message names it).
        """
        check_user_id(user_id)
        memories = _read_export(Path(path), self._max_chars)
        with _Progress(progress, len(memories), "Importing memories") as bar:
            for start in range(0, len(memories), self._batch):
                batch = memories[start : start + self._batch]
                vectors = self._embed([m.text for m in batch])
                with self._lock:
                    opened = self._open(user_id, create=True)
                    assert opened is not None
                    keys, col = opened
                    with _wrap_backend("import memories", self._hint()):
                        col.upsert(
                            ids=[m.id for m in batch],
                            embeddings=vectors,
                            metadatas=[keys.seal_row(m) for m in batch],
                        )
                bar.advance(len(batch))
        return len(memories)

    # -- ingestion ---------------------------------------------------------------------------

    def ingest_notes(
        self,
        user_id: str,
        notes: str | Path | Iterable[str | Path],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
        max_chunk_chars: int | None = None,
        ttl: float | timedelta | None = None,
        progress: bool = True,
    ) -> list[Memory]:
        """Store plain notes, split into paragraph-sized memories.

        Args:
            user_id: Whose notes they are.
            notes: Note text, a file or folder (``.txt``/``.md``/``.rst``), or a list of them.
            metadata: Added to every piece, next to ``source="notes"`` and ``file`` (file name).
            max_chunk_chars: Longest piece (default 1000, capped at ``max_text_chars``);
                paragraphs are split at sentences, then words.
            ttl: Expiry for every piece.
            progress: Show a progress bar on stderr when it is a terminal.

        Returns:
            The stored memories, in order.
        """
        check_user_id(user_id)
        extra = check_metadata(metadata)
        max_chunk_chars = self._chunk_chars(max_chunk_chars)
        items: list[str | MemoryInput] = []
        for text, file_name in read_notes(notes):
            meta: dict[str, MetadataValue] = {"source": "notes"}
            if file_name is not None:
                meta["file"] = file_name
            meta.update(extra)
            items.extend(MemoryInput(piece, meta) for piece in chunk_note(text, max_chunk_chars))
        return self.add_many(user_id, items, ttl=ttl, progress=progress)

    def ingest_transcript(
        self,
        user_id: str,
        transcript: str | Path | Sequence[Mapping[str, Any]],
        *,
        roles: Sequence[str] = ("user",),
        conversation: str | None = None,
        metadata: Mapping[str, MetadataValue] | None = None,
        max_chunk_chars: int | None = None,
        ttl: float | timedelta | None = None,
        progress: bool = True,
    ) -> list[Memory]:
        """Store the turns of a chat transcript as memories.

        By default only the user's own turns are kept: they are what the user said about
        themselves; assistant turns are mostly generic. Each memory gets metadata
        ``source="transcript"``, ``role``, ``turn`` (index in the transcript) and
        ``conversation`` when given.

        Args:
            user_id: Whose transcript it is.
            transcript: ``[{"role": ..., "content": ...}, ...]``, or a ``.json``/``.jsonl`` file.
            roles: Which roles' turns to keep.
            conversation: An id for the conversation, stored with every turn.
            metadata: Added to every turn.
            max_chunk_chars: Longest piece (as for :meth:`ingest_notes`); long turns are split.
            ttl: Expiry for every turn.
            progress: Show a progress bar on stderr when it is a terminal.

        Returns:
            The stored memories, in order.
        """
        check_user_id(user_id)
        extra = check_metadata(metadata)
        max_chunk_chars = self._chunk_chars(max_chunk_chars)
        if isinstance(roles, str):
            roles = (roles,)
        wanted = set(roles)
        items: list[str | MemoryInput] = []
        for turn, role, content in read_transcript(transcript):
            if role not in wanted or not content.strip():
                continue
            meta: dict[str, MetadataValue] = {"source": "transcript", "role": role, "turn": turn}
            if conversation is not None:
                meta["conversation"] = conversation
            meta.update(extra)
            items.extend(MemoryInput(piece, meta) for piece in chunk_note(content, max_chunk_chars))
        return self.add_many(user_id, items, ttl=ttl, progress=progress)

    def _chunk_chars(self, value: object) -> int:
        if value is None:
            return min(1000, self._max_chars)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 20 <= value <= self._max_chars
        ):
            raise InvalidInputError(
                f"max_chunk_chars must be an int from 20 to max_text_chars ({self._max_chars})"
            )
        return value

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Drop cached handles and keys. The store stays on disk; open it again at any time."""
        with self._lock:
            self._collections.clear()
            self._keys.clear()
            self._naming_key = None

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._url if self._url is not None else str(self._path)
        return f"MemoryStore({where!r}, embedder={self._embedder.name!r})"


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, then unlink it (best effort against casual recovery)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.write(b"\0" * size)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)


def _read_export(path: Path, max_chars: int) -> list[Memory]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read export file {path} ({type(e).__name__})") from e
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if header != EXPORT_FORMAT:
        raise InvalidInputError(
            f"{path} is not a specsteer memory export (first line must be {json.dumps(EXPORT_FORMAT)})"
        )
    out: list[Memory] = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            mid = check_memory_id(doc["id"])
            expires = doc["expires_at"]
            memory = Memory(
                id=mid,
                text=check_text(doc["text"], max_chars),
                metadata=check_metadata(doc["metadata"]),
                created_at=float(doc["created_at"]),
                updated_at=float(doc["updated_at"]),
                expires_at=None if expires is None else float(expires),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(
                f"{path} line {n} is not a valid memory record ({type(e).__name__}: {e}); fix "
                "or remove that line"
            ) from e
        out.append(memory)
    return out
