"""The persona: its values, and what is read from a user's memories (tables with near-misses)."""

from __future__ import annotations

import pytest

from specsteer._errors import InvalidInputError
from specsteer.memory import Inference, Memory, Person, Persona, infer_persona
from specsteer.memory._persona import merge


def _memories(*texts: str) -> list[Memory]:
    return [Memory(id=f"{i:032x}", text=t, created_at=float(i)) for i, t in enumerate(texts)]


def _people(*texts: str) -> list[tuple[str, str]]:
    return [
        (i.value.name, i.value.relation)
        for i in infer_persona(_memories(*texts))
        if isinstance(i.value, Person)
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My sister Lena lives in Lisbon.", [("Lena", "sister")]),
        ("Most Sundays my best friend Inês and I go hiking.", [("Inês", "best friend")]),
        ("Gabriela (my partner) and I love Ramen Tetsu.", [("Gabriela", "partner")]),
        ("My landlord, Ms Levi, has not fixed the boiler.", [("Ms Levi", "landlord")]),
        ("Lena, my sister, loves jazz.", [("Lena", "sister")]),
        ("My brother's name is Tunde.", [("Tunde", "brother")]),
        ("When I need to swap shifts, I ask my colleague Léa.", [("Léa", "colleague")]),
        ("My sister Lena's birthday is in March.", [("Lena", "sister")]),
        ("I called my mum Ji-woo Park yesterday.", [("Ji-woo Park", "mum")]),
        # Near-misses: no capitalised name after the relation, or not the user's relation.
        ("My sister lives in Lisbon.", []),
        ("My best friend and I go hiking.", []),
        ("My colleague I trust most is away.", []),
        ("Her sister Lena lives in Lisbon.", []),
        ("I love my friends.", []),
        ("My partner, who cooks, is great.", []),
        ("My landlord, Mr, is slow.", []),
    ],
)
def test_people_named_with_a_relation(text: str, expected: list[tuple[str, str]]) -> None:
    assert _people(text) == expected


@pytest.mark.parametrize(
    ("text", "sign_off", "name"),
    [
        ("I sign my messages 'Talk soon, Emre'.", "Talk soon, Emre", "Emre"),
        ("I signed off my last email with 'Cheers, Tomás'.", "Cheers, Tomás", "Tomás"),
        ("Thanks for the lift!\nCheers,\nInes", "Cheers, Ines", "Ines"),
        ("See you at eight.\nLove, Maya", "Love, Maya", "Maya"),
        ("Cheers, Ines", "Cheers, Ines", "Ines"),
        ("Kind regards,\nDr Ana Silva", "Kind regards, Dr Ana Silva", "Dr Ana Silva"),
        # Near-misses: a closing word without a comma or line break, no name, a quote that is
        # not a sign-off, a lower-case word after the closing.
        ("Love Paris.", None, None),
        ("Cheers, everyone", None, None),
        ("I signed the lease 'as is'.", None, None),
        ("I sign up for every race.", None, None),
        ("Best friend Inês is coming.", None, None),
        ("Thanks, I'm fine.", None, None),
    ],
)
def test_sign_offs(text: str, sign_off: str | None, name: str | None) -> None:
    found = infer_persona(_memories(text))
    assert [i.value for i in found if i.field == "sign_off"] == ([sign_off] if sign_off else [])
    assert [i.value for i in found if i.field == "name"] == ([name] if name else [])


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("My name is Maya Okafor and I live in Rotterdam.", "Maya Okafor"),
        ("Friends call me Jo.", "Jo"),
        ("I go by Sam at work.", "Sam"),
        ("My name is on the list.", None),
        ("I am vegetarian.", None),
        ("I am Italian.", None),
    ],
)
def test_own_name(text: str, name: str | None) -> None:
    found = [i.value for i in infer_persona(_memories(text)) if i.field == "name"]
    assert found == ([name] if name else [])


def test_a_stated_name_beats_a_signed_one_and_the_newest_sign_off_wins() -> None:
    memories = _memories(
        "I sign my messages 'Best, Maya'.",
        "My name is Maya Okafor.",
        "Thanks!\nLove,\nMaya",
    )
    view = merge(Persona(), infer_persona(memories))
    assert view.persona.name == "Maya Okafor"
    assert view.persona.sign_off == "Love, Maya"
    assert {i.memory_id for i in view.inferred} == {memories[1].id, memories[2].id}


def test_the_user_is_not_one_of_their_own_people() -> None:
    memories = _memories("My name is Lena.", "My sister Lena would laugh.")
    assert [i.field for i in infer_persona(memories)] == ["name"]


def test_what_the_user_set_wins_and_hidden_people_stay_hidden() -> None:
    inferred = infer_persona(
        _memories(
            "My sister Lena lives in Lisbon.", "My brother Tunde loves football.", "Cheers, Ines"
        )
    )
    stored = Persona(name="Inês", people=(Person("Lena", "cousin"),), hidden=("Tunde",))
    view = merge(stored, inferred)
    assert view.persona.name == "Inês" and view.source("name") == "set"
    assert view.persona.sign_off == "Cheers, Ines" and view.source("sign_off") == "inferred"
    assert view.persona.people == (Person("Lena", "cousin"),)
    assert view.source("Lena") == "set" and view.source("Tunde") is None
    assert [i.field for i in view.inferred] == ["sign_off"]
    doc = view.to_json()
    assert doc["name"] == {"value": "Inês", "source": "set", "memory_id": None}
    assert doc["sign_off"]["source"] == "inferred" and doc["sign_off"]["memory_id"]
    assert doc["hidden"] == ["Tunde"]


def test_editing_people() -> None:
    persona = Persona(people=(Person("Lena", "sister"),))
    moved = persona.with_person(Person("lena", "cousin"))
    assert moved.people == (Person("lena", "cousin"),)
    dropped = moved.without_person("LENA")
    assert dropped.people == () and dropped.hidden == ("LENA",)
    assert dropped.with_person(Person("Lena", "sister")).hidden == ()


def test_persona_values_are_checked() -> None:
    assert Persona(name="  Maya   Okafor ").name == "Maya Okafor"
    assert Person("Lena", " Best  Friend ").relation == "best friend"
    with pytest.raises(InvalidInputError, match="empty"):
        Person("  ", "sister")
    with pytest.raises(InvalidInputError, match="keep it to"):
        Persona(name="x" * 101)
    with pytest.raises(InvalidInputError, match="Person"):
        Persona(people=("Lena",))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown persona field"):
        Persona.from_json({"nick": "M"})
    with pytest.raises(InvalidInputError, match="JSON"):
        Persona.loads("{")
    persona = Persona("Maya", "Love, Maya", (Person("Lena", "sister"),), ("Tunde",))
    assert Persona.loads(persona.dumps()) == persona
    assert set(persona.texts()) >= {"Maya", "Love, Maya", "Lena", "Tunde"}


def test_inference_keeps_the_memory_it_came_from() -> None:
    (found,) = infer_persona(_memories("My sister Lena lives in Lisbon."))
    assert found == Inference("person", Person("Lena", "sister"), f"{0:032x}")
    assert found.memory_text == "My sister Lena lives in Lisbon."
    assert "Lisbon" not in repr(found)
