"""Each user's chromadb collection and the keys that seal its rows, opened on demand and cached."""

from __future__ import annotations

import contextlib
from typing import Any, Final

from specsteer._errors import ConfigurationError
from specsteer.memory._chroma_client import chromadb_module, wrap_backend
from specsteer.memory._crypto import FORMAT, UserKeys, collection_name
from specsteer.memory._errors import UserForgottenError, UserKeyMissingError
from specsteer.memory._turned import turn_stored_vectors
from specsteer.memory._validate import RESERVED_USER_ID
from specsteer.privacy import KeyDestroyedError, KeyNotFoundError, Keyring

__all__ = ["UserCollections"]

#: Users whose derived keys stay cached (a server for many users derives the rest again).
_KEPT_KEYS: Final = 16


class UserCollections:
    """Maps a user id to their keys and collection (named by a keyed hash, never the id).

    Not thread-safe on its own: the store calls it under its lock.

    Args:
        client: An open chromadb client.
        keyring: Source of the per-user data keys and the device-wide naming key.
        embedder_name: Recorded on new collections; opening one made with another is refused.
        hint: What to check when chromadb fails (appended to the error).
    """

    def __init__(self, client: Any, keyring: Keyring, embedder_name: str, hint: str) -> None:
        self.client = client
        self._keyring = keyring
        self._embedder_name = embedder_name
        self._hint = hint
        self._collections: dict[str, Any] = {}
        self._keys: dict[str, tuple[bytes, UserKeys]] = {}
        self._naming_key: bytes | None = None

    def name_for(self, user_id: str) -> str:
        """The name of the user's collection."""
        if self._naming_key is None:
            self._naming_key = self._keyring.data_key(RESERVED_USER_ID)
        return collection_name(self._naming_key, user_id)

    def open(self, user_id: str) -> tuple[UserKeys, Any] | None:
        """The user's keys and collection, or None when they have no key or no collection."""
        keys = self._user_keys(user_id, create=False)
        if keys is None:
            return None
        col = self._collection(keys, create=False)
        return None if col is None else (keys, col)

    def open_for_write(self, user_id: str) -> tuple[UserKeys, Any]:
        """The user's keys and collection, made when missing.

        Raises:
            UserForgottenError: The user was forgotten.
        """
        keys = self._user_keys(user_id, create=True)
        assert keys is not None
        return keys, self._collection(keys, create=True)

    def exists(self, user_id: str) -> bool:
        """Whether the user has a collection (made by their first write; gone once forgotten)."""
        return self._stored(self.name_for(user_id)) is not None

    def drop(self, user_id: str) -> None:
        """Forget the cached handles of a user and delete their collection (if any)."""
        name = self.name_for(user_id)
        self._keys.pop(user_id, None)
        self._collections.pop(name, None)
        chromadb = chromadb_module()
        with (
            wrap_backend("delete the user's collection", self._hint),
            contextlib.suppress(chromadb.errors.NotFoundError),
        ):
            self.client.delete_collection(name)

    def clear(self) -> None:
        """Drop every cached handle and key."""
        self._collections.clear()
        self._keys.clear()
        self._naming_key = None

    def _user_keys(self, user_id: str, *, create: bool) -> UserKeys | None:
        """The user's derived keys; None when the user has none (never stored, or forgotten).

        Raises:
            UserForgottenError: ``create`` for a forgotten user.
            UserKeyMissingError: The user has a collection but no data key: a new key would
                make their stored rows unreadable for good, so none is made.
        """
        if self._keyring.is_forgotten(user_id):
            if create:
                raise UserForgottenError(user_id)
            return None
        try:
            data_key = self._data_key(user_id, create=create)
        except KeyDestroyedError as e:  # forgotten between the two calls
            if create:
                raise UserForgottenError(user_id) from e
            return None
        if data_key is None:
            return None
        cached = self._keys.pop(user_id, None)  # put back last: the most recent stay
        keys = cached[1] if cached is not None and cached[0] == data_key else None
        if keys is None:
            keys = UserKeys.derive(data_key, self.name_for(user_id))
        self._keys[user_id] = (data_key, keys)
        while len(self._keys) > _KEPT_KEYS:  # each holds its vector matrix (1.2 MB at 384)
            del self._keys[next(iter(self._keys))]
        return keys

    def _data_key(self, user_id: str, *, create: bool) -> bytes | None:
        """The user's data key; a new one only for a user with nothing stored."""
        try:
            return self._keyring.data_key(user_id, create=False)
        except KeyNotFoundError:
            pass
        stored = self._stored(self.name_for(user_id))
        if stored is not None:
            with wrap_backend("count memories", self._hint):
                count = int(stored.count())
            path = self._keyring.user_key_path(user_id)
            raise UserKeyMissingError(user_id, str(path), count)
        return self._keyring.data_key(user_id, create=True) if create else None

    def _stored(self, name: str) -> Any:
        """The collection called ``name`` when it exists, else None."""
        cached = self._collections.get(name)
        return cached if cached is not None else self._get_or_create(name, create=False)

    def _collection(self, keys: UserKeys, *, create: bool) -> Any:
        col = self._collections.get(keys.collection)
        if col is None:
            col = self._get_or_create(keys.collection, create)
            if col is None:
                return None
            self._check_embedder(col)
            turn_stored_vectors(keys, col, self._hint)  # rows written before, if any
            self._collections[keys.collection] = col
        return col

    def _get_or_create(self, name: str, create: bool) -> Any:
        chromadb = chromadb_module()
        with wrap_backend("open a collection", self._hint):
            try:
                return self.client.get_collection(name, embedding_function=None)
            except chromadb.errors.NotFoundError:
                if not create:
                    return None
            try:
                return self.client.create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"specsteer_format": FORMAT, "embedder": self._embedder_name},
                )
            except Exception:  # another process created it first
                return self.client.get_collection(name, embedding_function=None)

    def _check_embedder(self, col: Any) -> None:
        stored = (col.metadata or {}).get("embedder")
        if stored is not None and stored != self._embedder_name:
            raise ConfigurationError(
                f"this user's memories were embedded with {stored!r} but the store was opened "
                f"with {self._embedder_name!r}; open it with the same embedder, or export with "
                "the old one and import with the new one"
            )
