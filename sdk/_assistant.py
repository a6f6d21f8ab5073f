"""The public facade: ``Assistant``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from specsteer._addressing import is_review_request, is_writing_request, recipients
from specsteer._config import GenerationConfig, with_overrides
from specsteer._egress import PrivateEgress
from specsteer._engine import Decoder, Wire
from specsteer._errors import ConfigurationError, InvalidInputError
from specsteer._events import Finished, RoundEvent, close_events
from specsteer._private_context import PrivateContext
from specsteer._prompt import (
    DEFAULT_SYSTEM_PROMPT,
    Prompt,
    build_prompt,
    check_request,
    fit_chat,
)
from specsteer._remember import RememberPolicy, Turn, remember_turn, split_turn
from specsteer._result import GenerationResult, GenerationStats
from specsteer._retrieval import RetrievalPolicy, fit_memories, select_memories
from specsteer._streaming import AnswerQueue, AnswerStream, AnswerText, Cut
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import CloudVerifier, InProcessVerifier
from specsteer.memory._validate import check_unicode

if TYPE_CHECKING:
    from specsteer.memory import BaseMemoryStore, Persona, PersonaView

__all__ = ["Assistant"]

#: Tokens a chat leaves free beyond the answer and the memories: the private context's other
#: lines (who writes, to whom) and the draft made ahead of the answer.
CHAT_MARGIN = 256


class Assistant:
    """A private, personalized assistant: a device model steered by the user's private memory,
    verified by a cloud model that never sees it.

    Args:
        device: the small model on the device.
        cloud: a cloud verifier; ``None`` allows only ``method='device_only'``.
        memory: the user's memory store (any :class:`~specsteer.memory.BaseMemoryStore`); each
            request retrieves its private context from it.
        user_id: whose memories to use (required with ``memory``).
        config: default generation settings (each call may override fields).
        system_prompt: instructions shared by the device and the cloud.
        privacy: the egress door (:class:`PrivateEgress`); ``True`` (the default) builds one with
            the default policy and the audit log under ``$SPECSTEER_HOME``; ``False`` sends
            requests without screening or audit (for measurements only).
        context_tokens: token budget of the memories in the private context; a memory too long
            for what is left keeps its opening sentences that fit.
        memory_k: at most this many memories by relevance per request; fewer when fewer clear
            ``min_score``, plus one about the person the request names. A small device model
            uses a short list of the facts that matter better than a long one with distractors
            (docs/evaluation.md).
        min_score: the relevance floor (cosine similarity to the request) for a memory to be
            used; the closest memory is used even below it.
        wire: how drafts travel (see :class:`Decoder`): ``'auto'``, ``'ids'`` (shared
            tokenizer) or ``'text'`` (cross-vocabulary mode).
        remember: store the user's own statements from each answered turn as memories
            (``True``, or a :class:`RememberPolicy`); they are kept out of what the cloud sees.
            Needs ``memory``. Off by default.

    Example:
        >>> from specsteer.testing import tiny_backend
        >>> assistant = Assistant.in_process(tiny_backend(0), tiny_backend(1))
        >>> result = assistant.generate("what is my plan for friday?", context="dinner in rome")
        >>> result.stats.method
        'specsteer'
    """

    def __init__(
        self,
        device: ModelBackend,
        cloud: CloudVerifier | None = None,
        *,
        memory: BaseMemoryStore | None = None,
        user_id: str | None = None,
        config: GenerationConfig | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        privacy: bool | PrivateEgress = True,
        context_tokens: int = 256,
        memory_k: int = 4,
        min_score: float = 0.15,
        wire: Wire = "auto",
        remember: bool | RememberPolicy = False,
    ) -> None:
        if memory is not None and not user_id:
            raise ConfigurationError("a memory store needs user_id=... (whose memories to use)")
        if context_tokens < 0 or memory_k < 1:
            raise ConfigurationError("context_tokens must be >= 0 and memory_k >= 1")
        self.retrieval = RetrievalPolicy(
            max_memories=memory_k, min_score=min_score, candidates=max(8, memory_k)
        )
        self.device = device
        self.memory = memory
        self.user_id = user_id
        self.config = config or GenerationConfig()
        self.system_prompt = system_prompt
        self.context_tokens = context_tokens
        self.memory_k = memory_k
        egress: PrivateEgress | None
        if isinstance(privacy, PrivateEgress):
            egress = privacy
        elif privacy and cloud is not None:
            egress = PrivateEgress(decode_ids=device.decode)
        else:
            egress = None
        self.egress = egress
        self.decoder = Decoder(device, cloud, egress=egress, wire=wire)
        if remember is not False and memory is None:
            raise ConfigurationError("remember=... needs a memory store; pass memory=...")
        #: How the user's statements are remembered; None: they are not.
        self.remembering: RememberPolicy | None = None
        if isinstance(remember, RememberPolicy):
            self.remembering = remember
        elif remember:
            self.remembering = RememberPolicy()
        self._answers = AnswerQueue()
        #: Whether this is a :meth:`for_user` view (each turn then starts without pseudonyms).
        self.isolated = False

    @classmethod
    def in_process(
        cls, device: ModelBackend, cloud_model: ModelBackend, **kwargs: Any
    ) -> Assistant:
        """An assistant whose cloud model runs in this process (no network)."""
        return cls(device, InProcessVerifier(cloud_model), **kwargs)

    def remember(self, text: str, **metadata: str | int | float | bool) -> str:
        """Add one private memory for this assistant's user; returns its id.

        Raises:
            ConfigurationError: the assistant has no memory store.
        """
        return self._store().add(self._user(), text, metadata or None).id

    def _store(self) -> BaseMemoryStore:
        if self.memory is None:
            raise ConfigurationError("this assistant has no memory store; pass memory=...")
        return self.memory

    def _user(self) -> str:
        assert self.user_id is not None  # a store comes with a user id (checked in __init__)
        return self.user_id

    def persona(self) -> PersonaView:
        """Who this user is when they write: what they set, with the gaps filled from their
        memories (each value marked set or inferred).

        Raises:
            ConfigurationError: the assistant has no memory store.
        """
        return self._store().persona_view(self._user())

    def set_persona(self, persona: Persona) -> PersonaView:
        """Replace what this user set about themselves (kept sealed with their memories).

        Returns:
            The persona now in use.

        Raises:
            ConfigurationError: the assistant has no memory store.
        """
        self._store().set_persona(self._user(), persona)
        return self.persona()

    def private_context(self, query: str) -> PrivateContext:
        """What the device is told for ``query``: who writes (the persona), to whom (the people
        the request names by relation), and the memories that bear on it."""
        if self.memory is None or self.user_id is None:
            return PrivateContext()
        view = self.memory.persona_view(self.user_id)
        persona = view.persona
        people = recipients(query, persona)
        writing = is_writing_request(query, persona)
        # A text the user sends gets their sign-off from the persona; the note it was read from
        # ("I sign my messages 'Talk soon, Emre'") only got recited mid-text.
        said = [i.memory_id for i in view.inferred if i.field == "sign_off"] if writing else []
        # An answer to the user reads a note about someone the request does not concern as
        # bearing on it ("popular in Portugal"); a text to send was measured no better without
        # such notes (docs/memory.md).
        others = [] if writing else [p for p in persona.people if p not in people]
        hits = select_memories(
            self.memory, self.user_id, query, people, self.retrieval, exclude=said, others=others
        )
        return PrivateContext(
            writer=persona.name,
            sign_off=persona.sign_off,
            recipients=tuple(people),
            memories=tuple(self._fit([h.text for h in hits])),
            writing=writing,
            review=is_review_request(query),
        )

    def _fit(self, texts: list[str]) -> list[str]:
        """The memories, in order, that fit the token budget together (a long one cut to its
        opening sentences, :func:`~specsteer._retrieval.fit_memories`)."""
        return fit_memories(texts, self.context_tokens, lambda t: len(self.device.encode(t)))

    def retrieve(self, query: str) -> str:
        """The private context for ``query`` as the device reads it ("" when there is none)."""
        return self.private_context(query).render()

    def generate(
        self,
        query: str | Sequence[Mapping[str, str]],
        *,
        context: str | PrivateContext | None = None,
        on_tokens: Callable[[list[int]], None] | None = None,
        **overrides: Any,
    ) -> GenerationResult:
        """Answer ``query`` with private context that only the device sees.

        Args:
            query: the request, or a chat as a list of ``{"role", "content"}`` dicts.
            context: what only the device sees: by default :meth:`private_context` of the
                request (the persona, the people it names, the memories that bear on it), or
                private text of your own. Never sent to the cloud.
            on_tokens: streaming callback, called with token ids as they become final.
            **overrides: fields of :class:`GenerationConfig` for this call (e.g. ``lam=0.3``).

        Returns:
            The result; ``result.privacy`` reports what left the device, ``result.remembered``
            the statements stored (with ``remember``).

        Raises:
            InvalidInputError: empty query or malformed messages.
            ConfigurationError: an unknown or invalid override.
        """
        turn = self._turn(query, context)
        prompt, config = self._prepare(turn.query, turn.context, overrides)
        return self._answered(turn, self.decoder.generate(prompt, config, on_tokens=on_tokens))

    def stream(
        self,
        query: str | Sequence[Mapping[str, str]],
        *,
        context: str | PrivateContext | None = None,
        **overrides: Any,
    ) -> Iterator[RoundEvent]:
        """Answer ``query`` as round events, as they happen.

        :class:`~specsteer.Tokens` events carry the answer's tokens as they become final (with
        where they came from: accepted draft, recovery, local); :class:`~specsteer.Round`,
        :class:`~specsteer.Exchange`, :class:`~specsteer.DeviceWork` and
        :class:`~specsteer.Fallback` say how; the last event, :class:`~specsteer.Finished`,
        holds the whole :class:`GenerationResult`. Iterate it to the end before the next call.

        Args and errors as :meth:`generate` (raised here, before the first event).

        Example:
            >>> from specsteer import Finished, TextFold, Tokens
            >>> from specsteer.testing import tiny_backend
            >>> assistant = Assistant.in_process(tiny_backend(0), tiny_backend(1))
            >>> text = TextFold(assistant.device.decode, assistant.device.eos_token_ids)
            >>> pieces = []
            >>> for event in assistant.stream("what is my plan for friday?", context="rome"):
            ...     if isinstance(event, Tokens):
            ...         pieces.append(text.add(event))
            ...     elif isinstance(event, Finished):
            ...         result = event.result
            >>> "".join(pieces).strip() == result.text
            True
        """
        turn = self._turn(query, context)
        prompt, config = self._prepare(turn.query, turn.context, overrides)
        return self._remembered(turn, self.decoder.stream(prompt, config))

    def _prepare(
        self,
        query: str | Sequence[Mapping[str, str]],
        context: str | PrivateContext | None,
        overrides: Mapping[str, Any],
    ) -> tuple[Prompt, GenerationConfig]:
        """The prompt's two views and the settings of one call; starts the egress's session."""
        config = self._config(overrides)
        query = self._fit_chat(query, config)
        if context is None:
            text = query if isinstance(query, str) else _last_user_text(query)
            context = self.private_context(text)
        prompt = build_prompt(query, context, system_prompt=self.system_prompt)
        if self.egress is not None:
            self.egress.begin(self._private_texts(context))
        return prompt, config

    def _fit_chat(
        self, query: str | Sequence[Mapping[str, str]], config: GenerationConfig
    ) -> str | Sequence[Mapping[str, str]]:
        """A chat too long for the device model's context without its oldest turns, leaving
        room for the answer, the private context and the draft ahead (:func:`fit_chat`)."""
        limit = self.device.context_limit
        if isinstance(query, str) or limit is None:
            return query
        room = limit - config.max_new_tokens - self.context_tokens - CHAT_MARGIN
        return fit_chat(query, room, lambda chat: len(self.device.encode_chat(chat)))

    # -- turns remembered, other users, the async API ----------------------------------------------

    def for_user(self, user_id: str) -> Assistant:
        """This assistant for another user of its memory store.

        The view shares the models, the cloud, the egress door and the queue of async answers,
        and uses ``user_id``'s memories. Pseudonymized values of one turn are never restored into
        another's. Answer through :meth:`agenerate` / :meth:`astream` (one answer at a time
        across all views) or serialize calls to :meth:`generate` yourself.

        Raises:
            ConfigurationError: the assistant has no memory store.
            InvalidInputError: a malformed user id.
        """
        from specsteer.memory._validate import check_user_id

        if self.memory is None:
            raise ConfigurationError("for_user needs an assistant with a memory store")
        view = copy.copy(self)
        view.user_id = check_user_id(user_id)
        view.isolated = True
        return view

    async def agenerate(
        self,
        query: str | Sequence[Mapping[str, str]],
        *,
        context: str | PrivateContext | None = None,
        **overrides: Any,
    ) -> GenerationResult:
        """:meth:`generate` for async code: the answer runs on a worker thread in its turn.

        Answers of one assistant (and its :meth:`for_user` views) run one at a time, in the
        order they were asked for; a cancelled call leaves the queue, or ends its generation.
        """
        async with self.astream(query, context=context, **overrides) as stream:
            async for _ in stream:
                pass
        assert stream.result is not None
        return stream.result

    def astream(
        self,
        query: str | Sequence[Mapping[str, str]],
        *,
        context: str | PrivateContext | None = None,
        stop: Sequence[str] = (),
        **overrides: Any,
    ) -> AnswerStream:
        """Stream an answer: ``async for piece in assistant.astream(...)`` yields :class:`Piece`
        objects as the text becomes final; ``stream.result`` holds the result afterwards.

        Args:
            query, context, **overrides: as for :meth:`generate`.
            stop: end the answer before the first of these strings (the answer then has no
                full result: ``stream.cut`` says what left the device and what was remembered).
        """
        turns: list[Turn] = []

        def produce() -> tuple[str, Iterator[RoundEvent]]:
            turns.append(self._turn(query, context))
            prompt, config = self._prepare(turns[0].query, turns[0].context, overrides)
            return config.method, self._remembered(turns[0], self.decoder.stream(prompt, config))

        def on_cut(stats: GenerationStats) -> Cut:
            stored = self._remember_turn(turns[0]) if turns else ()
            return Cut(stats, self.egress.report() if self.egress is not None else None, stored)

        restore = self.egress.restore if self.egress is not None else str
        stops = (stop,) if isinstance(stop, str) else tuple(stop)
        eos = self.device.eos_token_ids
        text = AnswerText(self.device.decode, restore, stops, eos)
        return AnswerStream(self._answers, produce, on_cut, text)

    def _turn(
        self, query: str | Sequence[Mapping[str, str]], context: str | PrivateContext | None
    ) -> Turn:
        check_request(query)  # before any memory is searched with it
        if isinstance(context, str):
            check_unicode(context, what="the context")
        if self.isolated and self.egress is not None:
            self.egress.guard.pseudonymizer.clear()  # another user's placeholders stay theirs
        if self.remembering is None:
            return Turn(query, context)
        return split_turn(query, context, self.private_context)

    def _remembered(self, turn: Turn, events: Iterator[RoundEvent]) -> Iterator[RoundEvent]:
        """``events``, the last one's result with what the turn stored (closing this closes
        ``events``: a generation left early ends)."""
        try:
            for event in events:
                if isinstance(event, Finished):
                    event = Finished(self._answered(turn, event.result))
                yield event
        finally:
            close_events(events)

    def _answered(self, turn: Turn, result: GenerationResult) -> GenerationResult:
        stored = self._remember_turn(turn)
        return replace(result, remembered=stored) if stored else result

    def _remember_turn(self, turn: Turn) -> tuple[str, ...]:
        if self.remembering is None or self.memory is None or self.user_id is None:
            return ()
        return remember_turn(self.memory, self.user_id, turn, self.remembering)

    def _private_texts(self, context: str | PrivateContext) -> list[str]:
        """What must not leave: the context as rendered, every memory and the persona."""
        private = context.texts() if isinstance(context, PrivateContext) else [context]
        if self.memory is not None and self.user_id is not None:
            private.extend(self.memory.all_texts(self.user_id))
            private.extend(self.memory.persona(self.user_id).texts())
        return private

    def _config(self, overrides: Mapping[str, Any]) -> GenerationConfig:
        return with_overrides(self.config, overrides)

    def close(self) -> None:
        """Release the cloud connection (and drop async answers still waiting)."""
        self._answers.close()
        if self.decoder.cloud is not None:
            self.decoder.cloud.close()


def _last_user_text(messages: Sequence[Mapping[str, str]]) -> str:
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    raise InvalidInputError("a chat must end with a 'user' message")
