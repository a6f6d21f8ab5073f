"""The two views of a request: what the cloud may see, and what the device sees with the
private context."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from specsteer._errors import InvalidInputError
from specsteer._private_context import PrivateContext
from specsteer.cloud_adapter import ChatMessage
from specsteer.memory._validate import check_unicode

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "PRIVATE_INTRO",
    "Prompt",
    "build_prompt",
    "check_request",
    "fit_chat",
]

DEFAULT_SYSTEM_PROMPT = "You are a helpful personal assistant. Answer briefly."

#: The line that introduces the private context in the device's system message.
PRIVATE_INTRO = "What you know about the user:"


@dataclass(frozen=True)
class Prompt:
    """The two views of one request.

    ``public`` is what the cloud may see (system prompt and chat, no private context);
    ``private`` is the same conversation with the private context in the system message.
    """

    public: tuple[ChatMessage, ...]
    private: tuple[ChatMessage, ...]
    context: str = ""
    #: Whether the user asks for a text written as them (a message, a review, a post): the
    #: decoder then takes a refusal out of the device's opening (``recover_refusals``).
    writing: bool = False
    #: The user's sign-off, for a text to a person (:attr:`PrivateContext.closing`): the device
    #: ends such a text with it when the text ends on its own (``sign_texts``).
    closing: str = ""
    #: What a text to a person's request calls the user's ("my pet" -> ``pet``,
    #: :func:`~specsteer._perspective.owned_words`): the decoder keeps the text from calling it
    #: the reader's (``keep_owner``).
    owned: frozenset[str] = frozenset()
    #: The user's notes a text written as them was given (:attr:`PrivateContext.notes`): the
    #: decoder ends the text before it reads another one out (``end_recitals``).
    notes: tuple[str, ...] = ()

    def public_dicts(self) -> list[dict[str, str]]:
        """The public messages as plain dicts."""
        return [{"role": m.role, "content": m.content} for m in self.public]

    def private_dicts(self) -> list[dict[str, str]]:
        """The private messages as plain dicts."""
        return [{"role": m.role, "content": m.content} for m in self.private]


def build_prompt(
    query: str | Sequence[Mapping[str, str]],
    context: str | PrivateContext = "",
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
) -> Prompt:
    """Build the public and private views of a request.

    The public view is the system prompt and the chat as given. The private view adds what only
    the device sees: a text ``context`` goes into its system message after
    :data:`PRIVATE_INTRO`; a :class:`PrivateContext` goes there as it renders itself (who writes,
    to whom, the memories) and also words the last user message as the user's request to write
    in their name (:meth:`PrivateContext.request`).

    Args:
        query: the user's request, or a whole chat (``[{"role": ..., "content": ...}]``).
        context: the private context (from the memory store); only the device sees it.
        system_prompt: instructions shared by both views.

    Raises:
        InvalidInputError: empty query or malformed messages.
    """
    chat = check_request(query)
    system = system_prompt
    if chat[0].role == "system":
        system, chat = chat[0].content, chat[1:]
    public = (ChatMessage(role="system", content=system), *chat)
    if isinstance(context, PrivateContext):
        return _with_private_context(public, context)
    private_system = system
    if context.strip():
        private_system = f"{system}\n\n{PRIVATE_INTRO}\n{context.strip()}"
    private = (ChatMessage(role="system", content=private_system), *chat)
    return Prompt(public=tuple(public), private=tuple(private), context=context)


def check_request(query: str | Sequence[Mapping[str, str]]) -> list[ChatMessage]:
    """The request as chat messages, checked: a non-blank text, or a chat of well-formed
    messages that ends with the user's; every text valid Unicode.

    Raises:
        InvalidInputError: what is wrong, and how to send it instead.
    """
    if isinstance(query, str):
        if not query.strip():
            raise InvalidInputError("the query is empty; pass the user's request as text")
        check_unicode(query, what="the query")
        return [ChatMessage(role="user", content=query)]
    chat = [_message(m) for m in query]
    if not chat or chat[-1].role != "user":
        raise InvalidInputError("a chat must end with a 'user' message")
    return chat


def fit_chat(
    chat: Sequence[Mapping[str, str]],
    room: int,
    count: Callable[[list[Mapping[str, str]]], int],
) -> list[Mapping[str, str]]:
    """``chat`` without its oldest turns, as many as it takes for ``count`` (its tokens) to be
    at most ``room``: the system messages and the last message always stay, and what is left
    starts with a user's turn. A chat that fits is returned whole."""
    head = [m for m in chat if m.get("role") == "system"]
    turns = [m for m in chat if m.get("role") != "system"]
    while len(turns) > 1 and count([*head, *turns]) > room:
        turns = turns[1:]
        while len(turns) > 1 and turns[0].get("role") != "user":
            turns = turns[1:]
    return [*head, *turns]


def _message(m: Mapping[str, str]) -> ChatMessage:
    if isinstance(m, Mapping) and isinstance(m.get("content"), str):
        check_unicode(m["content"], what=f"the {m.get('role')} message")
    try:
        return ChatMessage(role=m["role"], content=m["content"])  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInputError(
            "messages must be dicts with 'role' ('system', 'user' or 'assistant') and "
            f"'content': {e}"
        ) from e


def _with_private_context(public: tuple[ChatMessage, ...], context: PrivateContext) -> Prompt:
    block = context.render()
    if not block:
        return Prompt(public=public, private=public, context="", writing=context.writing)
    system, *chat = public
    last = chat[-1]
    private = (
        ChatMessage(role="system", content=f"{system.content}\n\n{block}"),
        *chat[:-1],
        ChatMessage(role="user", content=context.request(last.content)),
    )
    return Prompt(
        public=public,
        private=private,
        context=block,
        writing=context.writing,
        closing=context.closing,
        owned=context.owned(last.content),
        notes=context.notes,
    )
