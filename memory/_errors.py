"""Errors of the memory store, placed in the package-wide hierarchy (``specsteer._errors``)."""

from __future__ import annotations

from specsteer._errors import MemoryStoreError
from specsteer.privacy import KeyDestroyedError

__all__ = [
    "CorruptedMemoryError",
    "MemoryNotFoundError",
    "UserForgottenError",
    "UserKeyMissingError",
    "UserNotFoundError",
]


class MemoryNotFoundError(MemoryStoreError, KeyError):
    """No live memory with that id for that user (never stored, deleted, expired or forgotten)."""

    def __init__(self, memory_id: str) -> None:
        MemoryStoreError.__init__(
            self,
            f"no memory {memory_id!r} for this user; it was deleted, expired or never stored "
            "(list the user's memories with MemoryStore.memories(user_id))",
        )
        self.memory_id = memory_id

    def __str__(self) -> str:  # KeyError would quote the message again
        return str(self.args[0])


class UserForgottenError(KeyDestroyedError):
    """The user was forgotten: their key is destroyed and new writes are refused until reinstated."""

    def __init__(self, user_id: str) -> None:
        MemoryStoreError.__init__(
            self,
            f"user {user_id!r} was forgotten (their data key was destroyed), so the store refuses "
            "to write for that id by accident; to start afresh on purpose, call "
            "MemoryStore.reinstate_user(user_id)",
        )
        self.user_id = user_id


class CorruptedMemoryError(MemoryStoreError):
    """A stored row does not decrypt or does not parse: altered on disk or written by another key."""


class UserNotFoundError(MemoryStoreError):
    """The store holds nothing of that user id: no memories, no persona, no key."""

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"there is no user {user_id!r} in this store (no memories, persona or key), so "
            "nothing was forgotten and the id was left free; check the user id"
        )
        self.user_id = user_id


class UserKeyMissingError(MemoryStoreError):
    """The user has data in the store but their data key is gone from the keyring."""

    def __init__(self, user_id: str, key_path: str, count: int) -> None:
        super().__init__(
            f"user {user_id!r} has {count} {'memory' if count == 1 else 'memories'} (and any "
            "persona they set) in the store, "
            f"but their data key {key_path} is missing, so none of it can be read and no new "
            "key is made over it; restore that key file from a backup, or forget the user "
            f"(MemoryStore.forget_user({user_id!r}); `specsteer memory forget --user "
            f"{user_id}`), which deletes what cannot be read, and store memories anew"
        )
        self.user_id = user_id
        self.count = count
