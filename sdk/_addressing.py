"""Who a request is for: the relation it names ("my sister", "my landlord"), the person in the
user's persona with that relation, and whether the user asks for a text to send or for an answer.

Pure functions of the request and the persona; the device prompt (:mod:`specsteer._prompt`)
states what they find, and retrieval (:mod:`specsteer._retrieval`) favours that person's
memories.
"""

from __future__ import annotations

import re
from typing import Final

from specsteer.memory import Person, Persona

__all__ = [
    "ANY_RELATION",
    "RELATION_WORDS",
    "is_review_request",
    "is_writing_request",
    "named_relations",
    "recipients",
    "without_relations",
]

#: Words a request may use for a relation, by the relation a persona records ("my coworker" is a
#: colleague, "my mum" a mother). A persona relation not listed here matches itself only.
RELATION_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "best friend": ("best friend", "closest friend", "oldest friend", "bestie", "bff"),
    "friend": ("friend", "mate", "pal"),
    "partner": (
        "partner", "girlfriend", "boyfriend", "wife", "husband", "fiancée", "fiancé", "fiancee",
        "fiance", "spouse", "other half",
    ),
    "colleague": ("colleague", "coworker", "co-worker", "workmate", "work friend", "teammate"),
    "boss": ("boss", "manager", "line manager", "supervisor"),
    "mother": ("mother", "mum", "mom", "mam", "mummy", "mommy"),
    "father": ("father", "dad", "daddy"),
    "sister": (
        "sister", "sis", "older sister", "younger sister", "little sister", "big sister",
        "twin sister",
    ),
    "brother": (
        "brother", "bro", "older brother", "younger brother", "little brother", "big brother",
        "twin brother",
    ),
    "grandmother": ("grandmother", "grandma", "granny", "nan", "nana"),
    "grandfather": ("grandfather", "grandpa", "granddad", "grandad"),
    "neighbour": ("neighbour", "neighbor"),
    "landlord": ("landlord", "landlady"),
    "flatmate": ("flatmate", "roommate", "housemate"),
    "aunt": ("aunt", "auntie"),
}  # fmt: skip
#: Looser words for a relation, tried when no one has the exact one ("my friend" may be the
#: best friend; "my sibling" a sister or a brother).
_WIDER: Final[dict[str, tuple[str, ...]]] = {
    "friend": ("best friend", "closest friend", "oldest friend"),
    "sibling": ("sister", "brother"),
    "parent": ("mother", "father"),
    "work friend": ("colleague", "friend"),
}
_CANONICAL: Final = {word: rel for rel, words in RELATION_WORDS.items() for word in words}
_ALL_WORDS = sorted({*_CANONICAL, *_WIDER}, key=len, reverse=True)
#: Every word for a relation, as a regular-expression alternation (longest first).
ANY_RELATION: Final = "|".join(re.escape(w) for w in _ALL_WORDS)
#: A relation after "my", "our", "the" or "a", or opening the request ("landlord email - ...").
_MY_RELATION = re.compile(
    r"(?:\b(?:my|our|the|an?)\s+|^\s*)(" + ANY_RELATION + r")(?:'s|’s|s)?\b",
    re.IGNORECASE,
)


def _canonical(relation: str) -> str:
    key = " ".join(relation.casefold().split())
    return _CANONICAL.get(key, key)


def named_relations(request: str) -> list[str]:
    """The relations a request names ("my sister", "my coworker's", "the landlord", or a
    relation opening the request: "landlord email - ..."), as written, lower-cased, in order."""
    return list(dict.fromkeys(m.group(1).casefold() for m in _MY_RELATION.finditer(request)))


def without_relations(request: str) -> str:
    """The request with the relations it names taken out ("thank my neighbour for minding my
    pet" -> "thank  for minding my pet")."""
    return _MY_RELATION.sub(" ", request)


def recipients(request: str, persona: Persona) -> list[Person]:
    """The people of ``persona`` the request names by relation (``"my sister"`` -> Lena).

    A word matches a person whose relation is the same after :data:`RELATION_WORDS`
    ("my mum" finds a "mother", "my coworker" a "colleague"); when nobody matches exactly, a
    looser word tries its wider meanings ("my friend" finds the best friend).
    """
    found: list[Person] = []
    for word in named_relations(request):
        wanted = _canonical(word)
        people = [p for p in persona.people if _canonical(p.relation) == wanted]
        if not people:
            wider = {_canonical(w) for w in _WIDER.get(word, _WIDER.get(wanted, ()))}
            people = [p for p in persona.people if _canonical(p.relation) in wider]
        found += [p for p in people if p not in found]
    return found


_WRITING = re.compile(
    r"\b(?:write|writing|draft|compose|text|email|e-mail|emails|message|msg|note|letter|card|"
    r"reply|respond|answer\s+(?:my|to)|review|post|caption|tweet|invite|invitation|thank|thanks|"
    r"thank-you|wish|send|tell|ask|announce|congratulate|apologi[sz]e|remind|chase|"
    r"put\s+(?:it\s+|this\s+)?into\s+words)\b",
    re.IGNORECASE,
)


_QUESTION = re.compile(
    r"^\s*(?:what|who|whom|whose|where|when|why|how|which|does|do|did|is|are|was|were|can|"
    r"could|should|would|will)\b|\?\s*$",
    re.IGNORECASE,
)


def is_writing_request(request: str, persona: Persona | None = None) -> bool:
    """Whether the user asks for a text to send or post (a message, an email, a note, a review,
    a post) rather than for an answer to them: the request uses a word of writing or sending,
    or, not being a question, names one of their people by relation ("I want to make plans
    with my best friend"; but "What does my sister like?" asks for an answer)."""
    if _WRITING.search(request):
        return True
    if _QUESTION.search(request):
        return False
    return persona is not None and bool(recipients(request, persona))


def is_review_request(request: str) -> bool:
    """Whether the text asked for is a review ("Write my product review of ...", "4-star
    review", "review for the kettle")."""
    return re.search(r"\breview", request, re.IGNORECASE) is not None
