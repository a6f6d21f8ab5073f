"""The metrics on hand-made strings, with exact expected values and the near-misses."""

from __future__ import annotations

import pytest

from specsteer import DEFAULT_SYSTEM_PROMPT
from specsteer._eval import (
    EvalExample,
    fact_recall,
    is_echo,
    is_repetitive,
    rouge,
    score,
    word_count,
)


@pytest.mark.parametrize(
    ("answer", "reference", "rouge1", "rouge_l"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0, 1.0),
        ("the cat lay on the mat", "the cat sat on the mat", 5 / 6, 5 / 6),
        # Same words, reversed order: every unigram matches, the longest common run is one word.
        ("delta gamma beta alpha", "alpha beta gamma delta", 1.0, 0.25),
        # Porter stemming: running -> run, dogs -> dog.
        ("Running dogs!", "run dog", 1.0, 1.0),
        ("completely different words", "the cat sat on the mat", 0.0, 0.0),
        ("", "the cat sat", 0.0, 0.0),
    ],
)
def test_rouge(answer: str, reference: str, rouge1: float, rouge_l: float) -> None:
    got = rouge(answer, reference)
    assert got["rouge1"] == pytest.approx(rouge1)
    assert got["rougeL"] == pytest.approx(rouge_l)


@pytest.mark.parametrize(
    ("answer", "facts", "expected"),
    [
        ("Hiking with Inês in Gerês on Sunday.", ["Inês", "gerês", "Porto"], 2 / 3),
        ("HIKING WITH INÊS", ["inês"], 1.0),
        ("Coffee at café\n  lumen later", ["Café Lumen"], 1.0),  # whitespace runs match a space
        ("Inês's birthday", ["Inês"], 1.0),  # an apostrophe ends a word
        ("I ate a banana", ["Ana"], 0.0),  # near-miss: inside a word
        ("Anastasia called", ["Ana"], 0.0),  # near-miss: the start of a longer word
        ("Hiking with Ines", ["Inês"], 0.0),  # near-miss: accents count
        ("Café Lumen", ["Café  Lumen", "Lumen"], 1.0),
        ("Walk in the park", ["gluten-free"], 0.0),
        ("It is gluten-free.", ["gluten-free"], 1.0),
        ("anything", [], None),
    ],
)
def test_fact_recall(answer: str, facts: list[str], expected: float | None) -> None:
    got = fact_recall(answer, facts)
    assert got == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a b c d a b c d a b c d", True),
        ("a b c d a b c d", False),  # near-miss: twice
        ("A b, c d. a B c D! a b c d", True),  # case and punctuation do not break a repeat
        ("la la la la la la", True),  # overlapping: 'la la la la' at 0, 1 and 2
        ("la la la la la", False),  # near-miss: only twice
        ("a b c a b c a b c", False),  # a 3-word loop has no 4-word sequence three times
        ("", False),
    ],
)
def test_is_repetitive(text: str, expected: bool) -> None:
    assert is_repetitive(text) is expected


QUERY = "Write a short message to my best friend proposing plans for this weekend please"
SYSTEM = "You are a helpful personal assistant. Answer briefly."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Sure! you are a helpful personal assistant answer briefly. Hi Ines", True),
        ("Sure: write a short message to my best friend proposing plans for this weekend", True),
        ("a short message to my best friend proposing plans for this weekend", True),  # 12 words
        ("short message to my best friend proposing plans for this weekend", False),  # 11 words
        ("You are a helpful personal assistant. Hi Ines!", False),  # part of the system prompt
        ("Hi Ines, are you free on Sunday for a hike in Gerês?", False),
    ],
)
def test_is_echo(answer: str, expected: bool) -> None:
    assert is_echo(answer, system_prompt=SYSTEM, query=QUERY) is expected


def test_word_count() -> None:
    assert word_count("Hi  there,\nfriend!") == 3
    assert word_count("   ") == 0


def test_score_puts_them_together() -> None:
    example = EvalExample(
        id="1",
        user_id="u",
        input="Text my friend.",
        profile=("My friend is Ines.",),
        output="Hi Ines, see you Sunday.",
        facts=("Ines", "Sunday", "Gerês"),
    )
    got = score("Hi Ines, see you Sunday.", example, system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert got == {
        "rouge1": pytest.approx(1.0),
        "rougeL": pytest.approx(1.0),
        "fact_recall": pytest.approx(2 / 3),
        "words": 5,
        "repetitive": False,
        "echo": False,
        "self_address": None,
        "placeholder": False,
        "wrong_recipient": None,
        "refusal": False,
        "restates": False,
        "owner_swap": None,
        "reads_notes": False,
        "speaks_of_reader": None,
    }
    named = EvalExample(**{**example.__dict__, "writer": "Tomás", "recipient": "Inês"})
    got = score("Hi Tomás! [Your Name]", named, system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert (got["self_address"], got["wrong_recipient"], got["placeholder"]) == (True, True, True)
    got = score("Hi Ines, see you Sunday.", named, system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert (got["self_address"], got["wrong_recipient"]) == (False, False)
    assert got["speaks_of_reader"] is False
    got = score("Hi Inês! My best friend Inês and I", named, system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert got["speaks_of_reader"] is True
    assert got["owner_swap"] is None  # the request calls nothing the user's
    pet = EvalExample(**{**named.__dict__, "input": "Thank my neighbour for minding my pet."})
    got = score("Hi Ines, thanks for minding your pet!", pet, system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert got["owner_swap"] is True
    answer = EvalExample(**{**pet.__dict__, "recipient": ""})
    got = score("Feed your pet.", answer, system_prompt=DEFAULT_SYSTEM_PROMPT)
    assert got["owner_swap"] is None  # an answer to the user: "your" is the user's
    notes = EvalExample(
        **{
            **example.__dict__,
            "profile": ("I walk my dog Ruby every day.", "I sing in the choir every Friday."),
        }
    )
    both = "Hi Ines! I walk my dog Ruby every day. I sing in the choir every Friday."
    assert score(both, notes, system_prompt=DEFAULT_SYSTEM_PROMPT)["reads_notes"] is True
    nobody = EvalExample(**{**example.__dict__, "profile": ()})
    assert score(both, nobody, system_prompt=DEFAULT_SYSTEM_PROMPT)["reads_notes"] is None
