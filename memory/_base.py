"""The memory-store seam: one validated public API, written once over a few storage primitives.

A store keeps each user's memories apart, returns only live (unexpired) ones, stores a text
once per user (the same after normalization), keeps each user's persona with their memories, and
refuses writes for a forgotten user until they are reinstated. Subclasses implement the
primitives (``_insert``, ``_put``, ``_get``, ``_list``, ``_nearest``, ``_delete``,
``_get_persona``, ``_put_persona``, ``_forget``, ``_reinstate``, ``_known``) on input this class has already
checked and embedded; callers use the public methods.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from specsteer._errors import ConfigurationError, InvalidInputError, MemoryStoreError
from specsteer.memory._embedder import Embedder
from specsteer.memory._errors import MemoryNotFoundError, UserNotFoundError
from specsteer.memory._export import export_memories, import_memories
from specsteer.memory._filters import check_where
from specsteer.memory._ingest import ingest_notes, ingest_transcript
from specsteer.memory._persona import Persona, PersonaView, name_key
from specsteer.memory._persona_infer import persona_view
from specsteer.memory._progress import Progress, batches
from specsteer.memory._types import Memory, MemoryInput, MetadataValue, SearchHit
from specsteer.memory._validate import (
    check_items,
    check_k,
    check_memory_id,
    check_metadata,
    check_min_score,
    check_query,
    check_text,
    check_ttl,
    check_user_id,
)

__all__ = ["KEEP", "BaseMemoryStore"]

Vectors = npt.NDArray[np.float32]  # [n, dim], rows L2-normalized
Where = Mapping[str, Any]


class _Keep:
    """Sentinel: leave a field as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


class BaseMemoryStore(ABC):
    """The seam every memory store implements: per-user memories, searchable by meaning.

    :class:`~specsteer.memory.MemoryStore` (chromadb, encrypted) is the default;
    :class:`~specsteer.memory.testing.InMemoryStore` is the in-process fake for tests.

    Args:
        embedder: Turns texts into vectors (the store embeds; implementations store vectors).
        max_text_chars: Longest memory accepted.
        batch_size: Texts embedded and written per batch in bulk writes.
        clock: Returns the current Unix time; replace it to test TTLs.

    Raises:
        ConfigurationError: A non-positive ``max_text_chars`` or ``batch_size``.
    """

    def __init__(
        self,
        *,
        embedder: Embedder,
        max_text_chars: int = 8000,
        batch_size: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (
            isinstance(max_text_chars, bool)
            or not isinstance(max_text_chars, int)
            or max_text_chars < 1
        ):
            raise ConfigurationError("max_text_chars must be a positive int")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError("batch_size must be a positive int")
        self._embedder = embedder
        self._max_chars = max_text_chars
        self._batch = batch_size
        self._clock = clock
        # Serializes store access; subclasses take it in their primitives. Embedding runs outside.
        self._lock = threading.RLock()

    @property
    def embedder(self) -> Embedder:
        """The embedder in use."""
        return self._embedder

    @property
    def max_text_chars(self) -> int:
        """Longest memory text accepted."""
        return self._max_chars

    @property
    def batch_size(self) -> int:
        """Texts embedded and written per batch in bulk writes."""
        return self._batch

    # -- the primitives a store implements (input already checked) -----------------------------

    @abstractmethod
    def _insert(self, user_id: str, new: Sequence[Memory], vectors: Vectors) -> list[Memory]:
        """Store new memories durably, each unless a live memory with the same text exists.

        Returns, per item, the memory stored or the live one it duplicates (an earlier item of
        the batch included). Raises ``UserForgottenError`` for a forgotten user.
        """

    @abstractmethod
    def _put(self, user_id: str, memories: Sequence[Memory], vectors: Vectors) -> None:
        """Store memories exactly as given, replacing any with the same id (no de-duplication).

        Raises ``UserForgottenError`` for a forgotten user.
        """

    @abstractmethod
    def _get(self, user_id: str, memory_id: str) -> Memory | None:
        """The user's live memory with that id, or None."""

    @abstractmethod
    def _list(self, user_id: str, where: Where | None) -> list[Memory]:
        """The user's live memories passing ``where``, in any order."""

    @abstractmethod
    def _nearest(
        self, user_id: str, query: Vectors, k: int, where: Where | None, floor: float | None
    ) -> list[SearchHit]:
        """At most ``k`` live memories closest to ``query`` ([1, dim]), most similar first.

        Scores are cosine similarities; hits below ``floor`` are left out.
        """

    @abstractmethod
    def _delete(self, user_id: str, memory_id: str) -> bool:
        """Delete one memory; whether it existed."""

    @abstractmethod
    def _get_persona(self, user_id: str) -> Persona | None:
        """The persona the user set, or None when they set none."""

    @abstractmethod
    def _put_persona(self, user_id: str, persona: Persona | None) -> None:
        """Store the user's persona durably (None removes it).

        Raises ``UserForgottenError`` for a forgotten user.
        """

    @abstractmethod
    def _forget(self, user_id: str, purge_vectors: bool) -> None:
        """Make the user's memories unreachable for good and refuse their writes from now on."""

    @abstractmethod
    def _reinstate(self, user_id: str) -> None:
        """Accept writes for a forgotten user again (a no-op for anyone else)."""

    @abstractmethod
    def _known(self, user_id: str) -> bool:
        """Whether the store holds anything of the user: memories, a persona, a key, or the
        mark of having been forgotten."""

    def _count(self, user_id: str) -> int:
        """How many live memories the user has; override when the backend counts faster."""
        return len(self._list(user_id, None))

    # -- writes ----------------------------------------------------------------------------------

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
                filterable by equality in :meth:`search`.
            ttl: Seconds (or a timedelta) until it expires; None keeps it until deleted.

        Returns:
            The stored memory (or the identical one stored earlier).

        Raises:
            InvalidInputError: Bad user id, text, metadata or ttl.
            UserForgottenError: The user was forgotten; see :meth:`reinstate_user`.
        """
        item = MemoryInput(text, metadata, None)
        return self.add_many(user_id, [item], ttl=ttl, progress=False)[0]

    def add_many(
        self,
        user_id: str,
        items: Iterable[str | MemoryInput],
        *,
        metadata: Mapping[str, MetadataValue] | None = None,
        ttl: float | timedelta | None = None,
        progress: bool = True,
        on_batch: Callable[[list[Memory]], None] | None = None,
    ) -> list[Memory]:
        """Remember many texts, embedding and writing them in batches of ``batch_size``.

        Every item is checked before anything is written. Duplicates (of stored memories or
        within the batch) come back as the memory already stored.

        Args:
            user_id: Whose memories they are.
            items: Texts, or :class:`MemoryInput` for per-item metadata or TTL.
            metadata: Metadata for every item (an item's own metadata is merged over it).
            ttl: Expiry for every item without its own.
            progress: Show a progress bar on stderr when it is a terminal.
            on_batch: Called with each batch's memories once that batch is durable.

        Returns:
            One memory per item, in order.

        Raises:
            InvalidInputError: A bad item (the message names its index); nothing is written.
            UserForgottenError: The user was forgotten.
        """
        check_user_id(user_id)
        checked = check_items(items, metadata, ttl, self._max_chars)
        out: list[Memory] = []
        with Progress(progress, len(checked), "Storing memories") as bar:
            for batch in batches(checked, self._batch):
                vectors = self._embed([item.text for item in batch])
                now = self._clock()
                written = self._insert(user_id, [_new_memory(item, now) for item in batch], vectors)
                out.extend(written)
                if on_batch is not None:
                    on_batch(written)
                bar.advance(len(batch))
        return out

    def put_many(self, user_id: str, memories: Sequence[Memory]) -> None:
        """Store memories exactly as given (ids, timestamps), replacing any with the same id.

        Texts are embedded with this store's embedder. This is what an import writes with.

        Raises:
            InvalidInputError: A bad id, text or metadata.
            UserForgottenError: The user was forgotten.
        """
        check_user_id(user_id)
        for memory in memories:
            check_memory_id(memory.id)
            check_text(memory.text, self._max_chars)
            check_metadata(memory.metadata)
        if memories:
            self._put(user_id, memories, self._embed([m.text for m in memories]))

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
        vectors = self._embed([new_text]) if new_text is not None else None
        with self._lock:  # read, change and write back as one step
            old = self.get(user_id, memory_id)
            now = self._clock()
            updated = replace(
                old,
                text=new_text if new_text is not None else old.text,
                metadata=new_meta if new_meta is not None else old.metadata,
                expires_at=old.expires_at if isinstance(ttl, _Keep) else _expiry(new_ttl, now),
                updated_at=max(now, old.updated_at),
            )
            if vectors is None:  # metadata or expiry only: the unchanged text, embedded again
                vectors = self._embed([updated.text])
            self._put(user_id, [updated], vectors)
        return updated

    def delete(self, user_id: str, memory_id: str) -> bool:
        """Delete one memory.

        Returns:
            Whether a memory was deleted (False when the user has no such memory).
        """
        check_user_id(user_id)
        check_memory_id(memory_id)
        return self._delete(user_id, memory_id)

    def forget_user(self, user_id: str, *, purge_vectors: bool = True) -> None:
        """Forget a user completely; their writes are refused until :meth:`reinstate_user`.

        Forgetting a forgotten user again is harmless; an id the store never held is refused,
        so a mistyped id is not blocked from then on.

        Args:
            user_id: Who to forget. Other users are never touched.
            purge_vectors: Also remove what the store leaves on disk (see the store's docs).

        Raises:
            UserNotFoundError: The store holds nothing of this user; nothing was changed.
        """
        check_user_id(user_id)
        with self._lock:
            if not self._known(user_id):
                raise UserNotFoundError(user_id)
            self._forget(user_id, purge_vectors)

    def reinstate_user(self, user_id: str) -> None:
        """Let a forgotten user id store memories again (old data stays lost).

        A no-op for a user who was never forgotten: their memories stay readable.
        """
        check_user_id(user_id)
        self._reinstate(user_id)

    # -- reads -----------------------------------------------------------------------------------

    def get(self, user_id: str, memory_id: str) -> Memory:
        """Return one memory of the user.

        Raises:
            MemoryNotFoundError: No live memory with that id for this user (ids of other users'
                memories are not found either).
        """
        check_user_id(user_id)
        check_memory_id(memory_id)
        memory = self._get(user_id, memory_id)
        if memory is None:
            raise MemoryNotFoundError(memory_id)
        return memory

    def memories(self, user_id: str, *, where: Where | None = None) -> list[Memory]:
        """Return every live memory of the user, oldest first (optionally filtered)."""
        check_user_id(user_id)
        found = self._list(user_id, check_where(where))
        return sorted(found, key=lambda m: (m.created_at, m.id))

    def all_texts(self, user_id: str) -> list[str]:
        """Every live memory text of the user (what the egress guard scans payloads against)."""
        return [m.text for m in self.memories(user_id)]

    def count(self, user_id: str) -> int:
        """How many live memories the user has."""
        check_user_id(user_id)
        return self._count(user_id)

    def search(
        self,
        user_id: str,
        query: str,
        k: int = 5,
        *,
        where: Where | None = None,
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
        check_query(query, self._max_chars)
        check_k(k)
        floor = check_min_score(min_score)
        checked = check_where(where)
        return self._nearest(user_id, self._embed([query]), k, checked, floor)

    # -- the persona -----------------------------------------------------------------------------

    def persona(self, user_id: str) -> Persona:
        """What the user set about themselves: the name they write as, their sign-off, the
        people in their life (an empty :class:`Persona` when they set nothing)."""
        check_user_id(user_id)
        return self._get_persona(user_id) or Persona()

    def set_persona(self, user_id: str, persona: Persona) -> Persona:
        """Replace what the user set about themselves; kept sealed with their memories.

        Returns:
            The persona stored.

        Raises:
            InvalidInputError: Bad user id, or not a :class:`Persona`.
            UserForgottenError: The user was forgotten.
        """
        check_user_id(user_id)
        if not isinstance(persona, Persona):
            raise InvalidInputError(
                f"set_persona takes a Persona, not {type(persona).__name__}; build one with "
                "specsteer.memory.Persona(name=..., sign_off=..., people=(Person(...),))"
            )
        self._put_persona(user_id, None if persona.empty else persona)
        return persona

    def drop_person(self, user_id: str, name: str) -> Persona:
        """Take someone out of the persona in use: remove them if set, and hide the name so a
        memory that names them does not bring them back.

        Returns:
            The persona stored.

        Raises:
            InvalidInputError: Nobody of that name is in the persona in use (set or inferred);
                nothing was changed.
            UserForgottenError: The user was forgotten.
        """
        check_user_id(user_id)
        with self._lock:
            view = self.persona_view(user_id)
            known = [p.name for p in view.persona.people if name_key(p.name) == name_key(name)]
            if not known:
                held = ", ".join(repr(p.name) for p in view.persona.people) or "no one"
                raise InvalidInputError(
                    f"nobody called {name!r} is in the persona of {user_id!r} (its people: "
                    f"{held}), so nothing was dropped; check the name"
                )
            return self.set_persona(user_id, view.stored.without_person(known[0]))

    def persona_view(self, user_id: str) -> PersonaView:
        """The persona in use: what the user set, with the gaps filled from their memories
        (a sign-off such as "Cheers, Ines"; "my sister Lena"), each value marked set or inferred."""
        return persona_view(self.persona(user_id), self.memories(user_id))

    # -- conveniences: the functions of _export and _ingest, bound as methods --------------------

    export = export_memories
    import_ = import_memories
    ingest_notes = ingest_notes
    ingest_transcript = ingest_transcript

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the store holds open; it can be used again afterwards."""

    def __enter__(self) -> BaseMemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _embed(self, texts: Sequence[str]) -> Vectors:
        vectors = self._embedder.embed(texts)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise MemoryStoreError(
                f"embedder {self._embedder.name!r} returned shape {vectors.shape} for "
                f"{len(texts)} texts; fix the embedder to return [n, dim]"
            )
        return vectors


def _expiry(ttl: float | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


def _new_memory(item: MemoryInput, now: float) -> Memory:
    return Memory(
        id=uuid.uuid4().hex,
        text=item.text,
        metadata=dict(item.metadata or {}),
        created_at=now,
        updated_at=now,
        expires_at=_expiry(item.ttl, now),
    )
