"""A user's persona: the name they write as, their sign-off, and the people in their life.

Private like every memory: a store keeps it sealed with the user's key and forgets it with them.
What the user sets here wins over what :mod:`specsteer.memory._persona_infer` reads from their
memories; ``hidden`` names inferred people the user has dismissed, so they stay dismissed.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Final, Literal

from specsteer._errors import InvalidInputError
from specsteer.memory._validate import check_unicode

__all__ = ["Inference", "Person", "Persona", "PersonaView", "Source"]

MAX_NAME_CHARS: Final = 100
MAX_SIGN_OFF_CHARS: Final = 200
MAX_RELATION_CHARS: Final = 40
MAX_PEOPLE: Final = 100

#: Where a value of the persona comes from.
Source = Literal["set", "inferred"]


def _clean(value: object, what: str, limit: int, *, blank_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    check_unicode(value, what=what)
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text and not blank_ok:
        raise InvalidInputError(f"{what} is empty; write it, or leave the field out")
    if len(text) > limit:
        raise InvalidInputError(f"{what} is {len(text)} characters long; keep it to {limit}")
    return text


def name_key(name: str) -> str:
    """The form two names share when they are the same person (case and spacing ignored)."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


@dataclass(frozen=True)
class Person:
    """Someone in the user's life.

    Attributes:
        name: How the user names them ("Lena", "Ms Levi").
        relation: What they are to the user, lower case ("sister", "landlord", "best friend").
    """

    name: str
    relation: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _clean(self.name, "a person's name", MAX_NAME_CHARS))
        relation = _clean(self.relation, f"the relation of {self.name!r}", MAX_RELATION_CHARS)
        object.__setattr__(self, "relation", relation.casefold())


@dataclass(frozen=True)
class Persona:
    """Who the user is when they write.

    Attributes:
        name: The name they write as ("" when unknown).
        sign_off: How they end a message ("Cheers, Ines"; "" when unknown).
        people: People in their life, with their relation to the user.
        hidden: Names of inferred people the user dismissed (they are not used).
    """

    name: str = ""
    sign_off: str = ""
    people: tuple[Person, ...] = ()
    hidden: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _clean(self.name, "name", MAX_NAME_CHARS, blank_ok=True))
        sign_off = _clean(self.sign_off, "sign_off", MAX_SIGN_OFF_CHARS, blank_ok=True)
        object.__setattr__(self, "sign_off", sign_off)
        people = tuple(self.people)
        if len(people) > MAX_PEOPLE:
            raise InvalidInputError(f"a persona holds at most {MAX_PEOPLE} people")
        if not all(isinstance(p, Person) for p in people):
            raise InvalidInputError("people must be Person(name, relation) values")
        object.__setattr__(self, "people", _unique_people(people))
        hidden = tuple(_clean(h, "a hidden name", MAX_NAME_CHARS) for h in self.hidden)
        object.__setattr__(self, "hidden", tuple(dict.fromkeys(hidden)))

    @property
    def empty(self) -> bool:
        """Whether nothing is set."""
        return not (self.name or self.sign_off or self.people or self.hidden)

    def texts(self) -> list[str]:
        """Every piece of private text the persona holds (for the egress guard's index)."""
        out = [self.name, self.sign_off, *self.hidden]
        out += [f"{p.name} ({p.relation})" for p in self.people]
        out += [p.name for p in self.people]
        return [t for t in out if t]

    def to_json(self) -> dict[str, Any]:
        """The persona as a JSON-ready dict."""
        return {
            "name": self.name,
            "sign_off": self.sign_off,
            "people": [{"name": p.name, "relation": p.relation} for p in self.people],
            "hidden": list(self.hidden),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Persona:
        """Read what :meth:`to_json` wrote.

        Raises:
            InvalidInputError: not a persona (unknown keys, wrong types).
        """
        if not isinstance(doc, Mapping):
            raise InvalidInputError("a persona must be a JSON object")
        unknown = set(doc) - {"name", "sign_off", "people", "hidden"}
        if unknown:
            raise InvalidInputError(f"unknown persona field {sorted(unknown)[0]!r}")
        people = doc.get("people", [])
        if not isinstance(people, list) or not all(isinstance(p, Mapping) for p in people):
            raise InvalidInputError("people must be a list of {'name', 'relation'} objects")
        hidden = doc.get("hidden", [])
        if not isinstance(hidden, list):
            raise InvalidInputError("hidden must be a list of names")
        return cls(
            name=doc.get("name", ""),
            sign_off=doc.get("sign_off", ""),
            people=tuple(Person(p.get("name"), p.get("relation")) for p in people),
            hidden=tuple(hidden),
        )

    def dumps(self) -> str:
        """The persona as compact JSON text."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Persona:
        """Read what :meth:`dumps` wrote."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInputError(f"a persona must be JSON ({e.msg})") from e
        return cls.from_json(doc)

    def with_person(self, person: Person) -> Persona:
        """This persona with ``person`` added (replacing anyone of the same name) and shown."""
        key = name_key(person.name)
        people = (*(p for p in self.people if name_key(p.name) != key), person)
        hidden = tuple(h for h in self.hidden if name_key(h) != key)
        return Persona(self.name, self.sign_off, people, hidden)

    def without_person(self, name: str) -> Persona:
        """This persona without the person called ``name``, who is also hidden if inferred."""
        key = name_key(name)
        people = tuple(p for p in self.people if name_key(p.name) != key)
        return Persona(self.name, self.sign_off, people, (*self.hidden, name))


def _unique_people(people: Sequence[Person]) -> tuple[Person, ...]:
    """People with later entries replacing earlier ones of the same name."""
    by_name: dict[str, Person] = {}
    for p in people:
        by_name.pop(name_key(p.name), None)
        by_name[name_key(p.name)] = p
    return tuple(by_name.values())


@dataclass(frozen=True)
class Inference:
    """One value read from the user's memories.

    Attributes:
        field: ``"name"``, ``"sign_off"`` or ``"person"``.
        value: The text (a name, a sign-off), or the :class:`Person`.
        memory_id: The memory it was read from.
        memory_text: That memory's text (private: for showing the user, never for logs).
    """

    field: Literal["name", "sign_off", "person"]
    value: str | Person
    memory_id: str
    memory_text: str = dataclass_field(repr=False, compare=False, default="")


@dataclass(frozen=True)
class PersonaView:
    """The persona in use: what the user set, with the gaps filled from their memories.

    Attributes:
        persona: The effective persona (what prompts use).
        stored: What the user set.
        inferred: The inferred values in use (each fills a gap ``stored`` leaves).
    """

    persona: Persona
    stored: Persona
    inferred: tuple[Inference, ...] = ()

    def source(self, what: str) -> Source | None:
        """Where the name (``"name"``), the sign-off (``"sign_off"``) or a person (their name)
        comes from; None when the view has no such value."""
        if what in ("name", "sign_off"):
            if getattr(self.stored, what):
                return "set"
            return "inferred" if getattr(self.persona, what) else None
        key = name_key(what)
        if any(name_key(p.name) == key for p in self.stored.people):
            return "set"
        if any(name_key(p.name) == key for p in self.persona.people):
            return "inferred"
        return None

    def to_json(self) -> dict[str, Any]:
        """The view as a JSON-ready dict: each value with its source and, when inferred, the
        memory it came from."""
        evidence = {_inference_key(i): i for i in self.inferred}

        def one(what: str, value: str) -> dict[str, Any] | None:
            if not value:
                return None
            found = evidence.get(what)
            return {"value": value, "source": self.source(what), "memory_id": _mid(found)}

        return {
            "name": one("name", self.persona.name),
            "sign_off": one("sign_off", self.persona.sign_off),
            "people": [
                {
                    "name": p.name,
                    "relation": p.relation,
                    "source": self.source(p.name),
                    "memory_id": _mid(evidence.get("person:" + name_key(p.name))),
                }
                for p in self.persona.people
            ],
            "hidden": list(self.stored.hidden),
        }


def _inference_key(i: Inference) -> str:
    if isinstance(i.value, Person):
        return "person:" + name_key(i.value.name)
    return i.field


def _mid(found: Inference | None) -> str | None:
    return found.memory_id if found is not None else None


def merge(stored: Persona, inferred: Iterable[Inference]) -> PersonaView:
    """Fill the gaps of what the user set with what was inferred.

    A set name or sign-off wins over an inferred one; an inferred person is used unless the user
    set someone of the same name or hid that name; the first inference of a value wins.
    """
    name, sign_off = stored.name, stored.sign_off
    people = list(stored.people)
    taken = {name_key(p.name) for p in people} | {name_key(h) for h in stored.hidden}
    used: list[Inference] = []
    for i in inferred:
        if i.field == "name" and not name and isinstance(i.value, str):
            name = i.value
        elif i.field == "sign_off" and not sign_off and isinstance(i.value, str):
            sign_off = i.value
        elif isinstance(i.value, Person) and name_key(i.value.name) not in taken:
            taken.add(name_key(i.value.name))
            people.append(i.value)
        else:
            continue
        used.append(i)
    persona = Persona(name, sign_off, tuple(people), stored.hidden)
    return PersonaView(persona=persona, stored=stored, inferred=tuple(used))
