"""Memory from the conversation: the user's own statements kept on the device, then stored.

With ``Assistant(remember=...)`` each turn is split before it is answered. The user's statements
about themselves (:func:`specsteer.memory.split_statements` says which sentences count) are taken
out of every user message of the public view and given to the device model as private context
instead, so they never leave the device; the rest of each message stays the public query. Once
the turn is answered, the statements of its last user message are stored as memories of the user
(de-duplicated by the store; metadata ``source="conversation"``; the policy's TTL). The
assistant's own words are never stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from specsteer._private_context import PrivateContext
from specsteer.memory._statements import split_statements

if TYPE_CHECKING:
    from specsteer.memory import BaseMemoryStore

__all__ = ["KEPT_STATEMENT", "RememberPolicy", "Turn", "remember_turn", "split_turn"]

logger = logging.getLogger(__name__)

#: What the public view of a user message says when the whole message was statements.
KEPT_STATEMENT = "(personal details, kept on the device)"

Query = str | Sequence[Mapping[str, str]]


class RememberPolicy(BaseModel):
    """How an assistant remembers what the user tells it (``Assistant(remember=...)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float | None = Field(
        default=None,
        gt=0,
        description="Seconds until a remembered statement expires; None keeps it until deleted.",
    )


@dataclass(frozen=True)
class Turn:
    """One turn as it will be answered.

    Attributes:
        query: the public view of the request: the statements taken out of its user messages.
        context: the private context (the retrieved memories, then the statements), or None to
            let the assistant retrieve it as usual.
        statements: the last user message's statements, stored once the turn is answered.
    """

    query: Query
    context: str | PrivateContext | None
    statements: tuple[str, ...] = ()


def split_turn(
    query: Query,
    context: str | PrivateContext | None,
    retrieve: Callable[[str], PrivateContext],
) -> Turn:
    """Take the user's statements out of ``query``'s public view and into the private context.

    Args:
        query: the request, or a chat of ``{"role", "content"}`` dicts.
        context: private context given by the caller, or None to retrieve it.
        retrieve: the assistant's memory retrieval for a query text.
    """
    if isinstance(query, str):
        split = split_statements(query)
        public: Query = split.rest or KEPT_STATEMENT
        every, last, said = split.statements, split.statements, query
    else:
        chat, every, last, said = _split_chat(query)
        public = chat
    if context is None:
        context = retrieve(said) if said.strip() else PrivateContext()
    return Turn(public, _with_statements(context, every), tuple(dict.fromkeys(last)))


def _with_statements(
    context: str | PrivateContext, statements: Sequence[str]
) -> str | PrivateContext:
    """``context`` with the statements it does not hold yet added after its memories."""
    if isinstance(context, PrivateContext):
        fresh = tuple(s for s in dict.fromkeys(statements) if s not in context.memories)
        return replace(context, memories=context.memories + fresh)
    lines = [f"- {s}" for s in dict.fromkeys(statements) if s not in context]
    return "\n".join([context.rstrip(), *lines]).strip("\n") if lines else context


def _split_chat(
    messages: Sequence[Mapping[str, str]],
) -> tuple[list[dict[str, str]], tuple[str, ...], tuple[str, ...], str]:
    chat: list[dict[str, str]] = []
    every: list[str] = []
    last: tuple[str, ...] = ()
    said = ""
    for m in messages:
        content = m.get("content") if isinstance(m, Mapping) else None
        if not isinstance(m, Mapping) or m.get("role") != "user" or not isinstance(content, str):
            chat.append(dict(m) if isinstance(m, Mapping) else m)  # build_prompt judges it
            continue
        split = split_statements(content)
        chat.append({**m, "content": split.rest or KEPT_STATEMENT})
        every.extend(split.statements)
        last, said = split.statements, content
    return chat, tuple(every), last, said


def remember_turn(
    memory: BaseMemoryStore, user_id: str, turn: Turn, policy: RememberPolicy
) -> tuple[str, ...]:
    """Store an answered turn's statements for ``user_id``; the texts stored anew.

    A statement the user has already told is stored once (the store de-duplicates it) and is
    not reported again. Nothing is stored for a forgotten user: forgetting stands until the
    user is reinstated.
    """
    from specsteer.memory import MemoryInput, UserForgottenError

    fits = [s for s in turn.statements if len(s) <= memory.max_text_chars]
    if not fits:
        return ()
    try:
        before = {m.id for m in memory.memories(user_id)}
        stored = memory.add_many(
            user_id,
            [MemoryInput(s, {"source": "conversation"}) for s in fits],
            ttl=policy.ttl,
            progress=False,
        )
    except UserForgottenError:
        logger.info("a forgotten user's statements were not stored")
        return ()
    return tuple(dict.fromkeys(m.text for m in stored if m.id not in before))
