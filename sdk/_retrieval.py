"""Which memories bear on a request: those that name the weekday it plans, the closest ones
above a relevance floor, as many as the request has (up to a cap), and the memories about the
person the request names; and how many of them fit the device's token budget.

Measured on the shipped sets (docs/evaluation.md): a fixed four pulled in memories that only
share a word with the request; a floor keeps them out, and the recipient's own memories (their
city, what they love) come in even when the request's words are far from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from specsteer._errors import ConfigurationError
from specsteer.memory import Person, SearchHit
from specsteer.memory._sources import split_sentences

if TYPE_CHECKING:
    from specsteer.memory import BaseMemoryStore

__all__ = ["RetrievalPolicy", "fit_memories", "searchable", "select_memories"]

_WEEKDAY = re.compile(r"\b(mon|tues|wednes|thurs|fri|satur|sun)days?\b", re.IGNORECASE)


@dataclass(frozen=True)
class RetrievalPolicy:
    """How many memories a request gets.

    Attributes:
        max_memories: At most this many by relevance.
        min_score: Leave out memories less similar to the request than this (cosine, MiniLM);
            the closest one is kept even below it, so a request always has some context.
        about_recipient: Memories added, beyond those, that name a person the request names.
        candidates: Nearest memories looked at.
        about_others_score: A memory about one of the people a request does not concern
            alone (it names them and says nothing in the first person) is left out below this
            similarity, unless it is the closest, names the day the request plans or a person
            it names: asked what to cook, the device model read "My sister Lena lives in
            Lisbon" (cosine 0.157) as a fact about the dish.
    """

    max_memories: int = 4
    min_score: float = 0.15
    about_recipient: int = 1
    candidates: int = 8
    about_others_score: float = 0.3

    def __post_init__(self) -> None:
        if self.max_memories < 1 or self.candidates < self.max_memories:
            raise ConfigurationError(
                "max_memories must be >= 1 and candidates >= max_memories "
                f"(got {self.max_memories} and {self.candidates})"
            )
        scores = (self.min_score, self.about_others_score)
        if self.about_recipient < 0 or not all(-1.0 <= s <= 1.0 for s in scores):
            raise ConfigurationError(
                "about_recipient must be >= 0, and min_score and about_others_score cosine "
                "similarities in [-1, 1]"
            )


def select_memories(
    store: BaseMemoryStore,
    user_id: str,
    request: str,
    recipients: Sequence[Person] = (),
    policy: RetrievalPolicy = RetrievalPolicy(),
    *,
    exclude: Collection[str] = (),
    others: Sequence[Person] = (),
) -> list[SearchHit]:
    """The user's memories for ``request``: those that name a weekday the request names, then
    the most relevant, then those about its recipients.

    Args:
        store: The user's memory store.
        user_id: Whose memories.
        request: The request's text.
        recipients: The people the request names ("my sister" -> Lena).
        policy: The floor and the caps.
        exclude: Ids of memories left out (what the prompt already says another way).
        others: The user's people the request does not concern: memories about them alone need
            :attr:`RetrievalPolicy.about_others_score`.
    """
    request = searchable(request, store.max_text_chars)
    if not request:
        return []  # nothing in it to search with
    others = [p for p in others if not _mentions(request, p.name)]  # named, so concerned
    names = [p.name for p in recipients]
    hits = [h for h in store.search(user_id, request, k=policy.candidates) if h.id not in exclude]
    on_the_day = _on_the_day(hits, request)
    above = [h for h in hits if h.score >= policy.min_score and h not in on_the_day]
    chosen = [*on_the_day, *above][: policy.max_memories] or hits[:1]
    # Left out, not replaced: the next candidate down bears on the request no more.
    chosen = [
        h
        for i, h in enumerate(chosen)
        if i == 0
        or h in on_the_day
        or h.score >= policy.about_others_score
        or any(_mentions(h.text, n) for n in names)
        or not _about_others(h.text, others)
    ]
    if recipients and policy.about_recipient:
        query = searchable(" ".join([*names, request]), store.max_text_chars)
        taken = {h.id for h in chosen}.union(exclude)
        about = [
            h
            for h in store.search(user_id, query, k=policy.candidates)
            if h.id not in taken and any(_mentions(h.text, n) for n in names)
        ]
        chosen += about[: policy.about_recipient]
    return chosen


def searchable(request: str, limit: int) -> str:
    """``request`` as the store searches it: without NUL characters (which the store refuses in
    a text) or the blanks around it, cut to its first ``limit`` characters (a long request's
    start says what it asks); "" when nothing is left to search with."""
    return request.replace("\x00", " ").strip()[:limit]


def fit_memories(texts: Sequence[str], budget: int, count: Callable[[str], int]) -> list[str]:
    """The memories, in order, that fit ``budget`` tokens together as the device reads them
    (one ``"- "`` line each). One too long for what is left keeps its opening sentences that
    fit: a long note or a past review keeps its start instead of leaving the prompt, and with
    it the most relevant memory of a history of long texts.

    Args:
        texts: The memories, most relevant first.
        budget: Tokens the block may take.
        count: Tokens of a text, by the device's tokenizer.
    """
    kept: list[str] = []

    def fits(text: str) -> bool:
        return count("\n".join(f"- {t}" for t in [*kept, text])) <= budget

    for text in texts:
        if fits(text):
            kept.append(text)
            continue
        sentences = split_sentences(" ".join(text.split()))
        opening = ""
        for sentence in sentences[:-1]:
            longer = f"{opening} {sentence}".strip()
            if not fits(longer):
                break
            opening = longer
        if opening:
            kept.append(opening)
    return kept


def _on_the_day(hits: Sequence[SearchHit], request: str) -> list[SearchHit]:
    """The hits that name a weekday the request names, in their order: what the user does on
    the day a request plans comes first, whatever its similarity. MiniLM ranked "I have night
    shifts on Thursdays" above "long runs are on Saturday mornings" for "Plan my Saturday
    morning", and the plan left the run out."""
    days = _weekdays(request)
    return [h for h in hits if days & _weekdays(h.text)] if days else []


def _weekdays(text: str) -> set[str]:
    return {m.group(1).casefold() for m in _WEEKDAY.finditer(text)}


_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|me|my|mine|we|us|our)\b", re.IGNORECASE)


def _about_others(text: str, people: Sequence[Person]) -> bool:
    """Whether a memory is about some of ``people`` alone: it names one of them and has no
    first-person word but the "my" of their relation ("My sister Lena lives in Lisbon";
    not "My piano lesson with Ms Levi")."""
    if not any(_mentions(text, p.name) for p in people):
        return False
    relations = sorted({p.relation for p in people if p.relation}, key=len, reverse=True)
    if relations:
        alternatives = "|".join(re.escape(r) for r in relations)
        text = re.sub(rf"\bmy\s+(?:{alternatives})\b", " ", text, flags=re.IGNORECASE)
    return _FIRST_PERSON.search(text) is None


def _mentions(text: str, name: str) -> bool:
    """Whether ``text`` names the person: their name, or its last word ("Ms Levi" -> "Levi")."""
    words = [name, name.split()[-1]]
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text) for w in words)
