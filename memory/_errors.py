"""Errors of the memory store, placed in the package-wide hierarchy (``specsteer._errors``)."""

from __future__ import annotations

from specsteer._errors import MemoryStoreError
from specsteer.privacy import KeyDestroyedError

__all__ = ["CorruptedMemoryError", "MemoryNotFoundError", "UserForgottenError"]


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
