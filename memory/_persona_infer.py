"""Reading a persona from the user's own memories: their name, their sign-off, and the people they
name with a relation ("my sister Lena", "Gabriela (my partner)", "my landlord, Ms Levi").

Plain patterns over first-person text, no model: what they find is shown to the user as inferred,
with the memory it came from, and the user can correct or dismiss it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from specsteer.memory._persona import Inference, Person, Persona, PersonaView, merge
from specsteer.memory._types import Memory

__all__ = ["RELATIONS", "infer_persona", "persona_view"]

#: Relations a memory may name someone by (matched longest first: "best friend" before "friend").
RELATIONS: Final[tuple[str, ...]] = (
    "best friend", "closest friend", "oldest friend", "friend", "girlfriend", "boyfriend",
    "partner", "wife", "husband", "fiancée", "fiancé", "fiancee", "fiance", "spouse", "sister",
    "brother", "twin sister", "twin brother", "older sister", "younger sister", "little sister",
    "big sister", "older brother", "younger brother", "little brother", "big brother", "mother",
    "mum", "mom", "father", "dad", "son", "daughter", "grandmother", "grandma", "granny",
    "grandfather", "grandpa", "granddad", "aunt", "auntie", "uncle", "cousin", "niece", "nephew",
    "stepmother", "stepfather", "stepsister", "stepbrother", "mother-in-law", "father-in-law",
    "sister-in-law", "brother-in-law", "colleague", "coworker", "co-worker", "boss", "manager",
    "mentor", "teacher", "tutor", "coach", "neighbour", "neighbor", "landlord", "landlady",
    "flatmate", "roommate", "housemate", "doctor", "dentist", "therapist", "babysitter", "nanny",
)  # fmt: skip
_REL = "|".join(re.escape(r) for r in sorted(RELATIONS, key=len, reverse=True))

#: Closings that start a sign-off ("Cheers, Ines").
CLOSINGS: Final[tuple[str, ...]] = (
    "All the best", "Best regards", "Best wishes", "Kind regards", "Warm regards", "Warmest regards",
    "With best wishes", "With love", "Lots of love", "Much love", "Love", "Yours sincerely",
    "Yours truly", "Yours", "Sincerely", "Regards", "Warmly", "Best", "Cheers", "Thanks",
    "Thank you", "Many thanks", "Take care", "Talk soon", "Speak soon", "See you soon", "Hugs",
    "Ciao",
)  # fmt: skip
_CLOSING = "|".join(re.escape(c) for c in sorted(CLOSINGS, key=len, reverse=True))

_TITLES: Final = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof"})
_TITLE = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+"
_WORD = r"[^\W\d_][\w'’-]*"
#: A name after a relation: an optional title, then up to two words (capitals checked later).
_NAME_AFTER = rf"((?:{_TITLE})?{_WORD}(?:\s+{_WORD})?)"
#: A name before a relation: an optional title and one word ("Gabriela (my partner)").
_NAME_BEFORE = rf"((?:{_TITLE})?{_WORD})"
#: Capitalised words that start sentences or follow a relation without being names.
_COMMON_WORDS = (
    "i i'm i've i'd i'll the a an and but or so then when who whose which that this these those "
    "he she they we you it his her their our my your is was has had does did will would can "
    "could should on in at of for to from with by about after before since until while every "
    "most some all both each last next one two also still just always never often sometimes "
    "usually recently today tomorrow yesterday"
)
_NOT_NAMES: Final = frozenset(_COMMON_WORDS.split())

_PERSON_PATTERNS: Final = (
    # my sister Lena / my landlord, Ms Levi / my best friend Inês
    (re.compile(rf"\bmy\s+({_REL}),?\s+{_NAME_AFTER}", re.IGNORECASE), 1, 2),
    # my sister's name is Lena / my sister is called Lena
    (
        re.compile(
            rf"\bmy\s+({_REL})(?:'s|’s)?\s+(?:name\s+is|is\s+called|is\s+named)\s+{_NAME_AFTER}",
            re.IGNORECASE,
        ),
        1,
        2,
    ),
    # Gabriela (my partner)
    (re.compile(rf"{_NAME_BEFORE}\s*\(my\s+({_REL})\)", re.IGNORECASE), 2, 1),
    # Lena, my sister
    (re.compile(rf"{_NAME_BEFORE},\s+my\s+({_REL})\b", re.IGNORECASE), 2, 1),
)
_OWN_NAME = re.compile(
    rf"\b(?:my\s+name\s+is|call\s+me|i\s+am\s+called|i'm\s+called|i\s+go\s+by)\s+{_NAME_AFTER}",
    re.IGNORECASE,
)
_QUOTED_SIGN_OFF = re.compile(
    r"\bsign(?:s|ed)?\b[^'\"“‘\n]{0,60}?['\"“‘]([^'\"”’\n]{2,80}?)['\"”’](?!\w)", re.IGNORECASE
)
#: A whole sign-off: a closing, then a comma or a line break, then the name ("Cheers, Ines").
_SIGN_OFF_VALUE = re.compile(
    rf"^(?:{_CLOSING})(?:[,!][ \t]*\n?|[ \t]*\n)\s*{_NAME_AFTER}[.!]?$", re.IGNORECASE
)


def _capitalised_name(candidate: str) -> str | None:
    """The leading words of ``candidate`` that look like a name (capitalised, not a common word,
    a title only with a name after it), or None."""
    kept: list[str] = []
    for word in candidate.split():
        bare = re.sub(r"['’]s$", "", word)
        if not bare[:1].isupper() or bare.rstrip(".").casefold() in _NOT_NAMES:
            break
        kept.append(bare)
        if bare != word:  # a possessive ends the name: "Lena's birthday"
            break
    has_title = bool(kept) and kept[0].rstrip(".").casefold() in _TITLES
    kept = kept[: 3 if has_title else 2]
    if not kept or (has_title and len(kept) == 1):
        return None
    return " ".join(kept)


def _people(text: str) -> Iterator[Person]:
    for pattern, rel_group, name_group in _PERSON_PATTERNS:
        for m in pattern.finditer(text):
            relation = m.group(rel_group)
            name = _capitalised_name(m.group(name_group))
            if name is not None:
                yield Person(name, " ".join(relation.split()).casefold())


def _sign_off(text: str) -> str | None:
    """A sign-off the memory quotes ("I sign my messages 'Talk soon, Emre'") or ends with
    (its last line, or its last two: "Cheers," then "Ines"); None when it has neither."""
    quoted = _QUOTED_SIGN_OFF.search(text)
    if quoted is not None and _name_of(quoted.group(1).strip()):
        return quoted.group(1).strip()
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for tail in ("\n".join(lines[-2:]), lines[-1] if lines else ""):
        if tail and _name_of(tail):
            return tail.replace("\n", " ")
    return None


def _name_of(sign_off: str) -> str | None:
    """The writer's name at the end of a sign-off ("Cheers, Ines" -> "Ines")."""
    m = _SIGN_OFF_VALUE.match(sign_off)
    return _capitalised_name(m.group(1)) if m else None


def infer_persona(memories: Sequence[Memory]) -> list[Inference]:
    """What the user's memories say about who they are.

    A name stated outright ("My name is Maya Okafor") comes before the first name a sign-off
    carries; newer memories come first for the name and the sign-off (a newer sign-off replaces
    an older one), older first for the people named with a relation.

    Returns:
        Every inference with the memory it was read from; :func:`merge` picks which are used.
    """
    stated: list[Inference] = []
    signed: list[Inference] = []
    for memory in sorted(memories, key=lambda m: (m.created_at, m.id), reverse=True):
        own = _OWN_NAME.search(memory.text)
        name = _capitalised_name(own.group(1)) if own else None
        if name is not None:
            stated.append(Inference("name", name, memory.id, memory.text))
        sign_off = _sign_off(memory.text)
        if sign_off is not None:
            signed.append(Inference("sign_off", sign_off, memory.id, memory.text))
            writer = _name_of(sign_off)
            if writer is not None:
                signed.append(Inference("name", writer, memory.id, memory.text))
    own_names = {str(i.value).casefold() for i in (*stated, *signed) if i.field == "name"}
    people: list[Inference] = []
    for memory in sorted(memories, key=lambda m: (m.created_at, m.id)):
        for person in _people(memory.text):
            if person.name.casefold() not in own_names:
                people.append(Inference("person", person, memory.id, memory.text))
    return [*stated, *signed, *people]


def persona_view(stored: Persona, memories: Iterable[Memory]) -> PersonaView:
    """What the user set, with the gaps filled from their memories."""
    return merge(stored, infer_persona(list(memories)))
