"""A text written as the user keeps the user's things the user's.

Asked for "a thank-you note to my neighbour for looking after my pet", the device model wrote
"I am writing to express my gratitude for looking after your pet": it turned the request's "my"
into "your", as an assistant answering the user does, in a text the user sends, where "your" is
the reader's. The same swap made "join my weekly class" an eagerness to "join your weekly
class" and "my flat" the landlord's own (docs/evaluation.md). The other way round, a text
spoke of its reader as of someone else: "My sister Camila lives in Mexico City" in a birthday
text to Camila, "I'm writing to ask my colleague Ren for a swap" to Ren.

:func:`owned_words` reads what a request calls the user's; :func:`swaps_owner` says whether a
text calls one of those things the reader's (an eval metric); :func:`owner_guard` keeps the
decoder from doing it: when a round's tokens say "your" before one of them, the "your" is ruled
out at its position and the round ends before it, so the drafter and the recovery write the
next choice there ("my pet"). :func:`speaks_of_reader` says whether a text names its reader
as someone else (an eval metric).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from specsteer._addressing import ANY_RELATION, without_relations
from specsteer._guards import PhraseGuard

__all__ = ["owned_words", "owner_guard", "speaks_of_reader", "swaps_owner"]

#: Words after "my" that name the text itself or a manner, not a thing the user owns ("my own
#: words", "my reply", "my thanks").
_NOT_THINGS: Final = frozenset(
    [
        "own",
        "reply",
        "thanks",
        "message",
        "text",
        "email",
        "note",
        "card",
        "words",
        "behalf",
        "way",
        "name",
        "review",
        "post",
        "answer",
        "response",
        "best",
    ]
)
_MY: Final = re.compile(r"\bmy\s+([^\W\d_][\w'’-]*)", re.IGNORECASE)
_YOUR_TOKEN: Final = re.compile(r"^\s*your$", re.IGNORECASE)


def owned_words(request: str) -> frozenset[str]:
    """The first word of each thing the request calls the user's ("my pet" -> ``pet``, "my
    weekly class" -> ``weekly``), lower-cased, without the people it names by relation ("my
    sister", "my best friend") and the words of the text itself ("my own words", "my reply")."""
    words = (m.group(1).casefold().rstrip("'’") for m in _MY.finditer(without_relations(request)))
    return frozenset(w.removesuffix("'s").removesuffix("’s") for w in words) - _NOT_THINGS


def _your(owned: frozenset[str]) -> re.Pattern[str]:
    """The pattern of "your" before one of ``owned`` ("your pet", not "your pet-sitting"):
    searched for in a text (:func:`swaps_owner`), matched at a token (:func:`owner_guard`)."""
    alternatives = "|".join(re.escape(w) for w in sorted(owned))
    return re.compile(rf"\s*\byour\s+(?:{alternatives})(?![\w'’-])", re.IGNORECASE)


def swaps_owner(answer: str, request: str) -> bool | None:
    """Whether a text calls the reader's ("your pet") a thing the request calls the user's ("my
    pet"); ``None`` when the request calls nothing the user's."""
    owned = owned_words(request)
    return None if not owned else _your(owned).search(answer) is not None


def owner_guard(
    greedy: Callable[[Sequence[int]], int],
    decode: Callable[[Sequence[int]], str],
    eos: frozenset[int],
    owned: frozenset[str],
    *,
    tries: int = 8,
) -> PhraseGuard:
    """Keeps a text to a person from calling the user's things the reader's: a "your" that the
    text goes on to follow with one of ``owned`` (:func:`owned_words`) is ruled out at its
    position (:class:`~specsteer._guards.PhraseGuard`; the arguments are its own)."""
    return PhraseGuard(greedy, decode, eos, _starts_your, _your(owned), tries=tries)


def _starts_your(token: str, before: Callable[[], str]) -> bool:
    return _YOUR_TOKEN.match(token) is not None


def _of_reader(name: str) -> re.Pattern[str]:
    """The reader named as someone else: "my" or "our", a relation, and the first word of their
    name as written ("my sister Camila")."""
    first = re.escape(name.split()[0])
    return re.compile(rf"\b(?:my|our)\s+(?:{ANY_RELATION})\s*,?\s+(?-i:{first})\b", re.IGNORECASE)


def speaks_of_reader(answer: str, reader: str) -> bool | None:
    """Whether a text to ``reader`` names them by relation as someone else ("my sister Camila
    lives in Mexico City", to Camila); ``None`` without a reader."""
    return None if not reader.strip() else _of_reader(reader).search(answer) is not None
