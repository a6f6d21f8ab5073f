"""Which sentences of a user's message are remembered: a table of messages and what is kept."""

from __future__ import annotations

import pytest

from specsteer.memory import personal_statements, split_statements

STATEMENTS = [
    # first-person statements of fact
    ("I am vegetarian.", ["I am vegetarian."]),
    ("i am allergic to peanuts", ["I am allergic to peanuts"]),
    ("I’m vegan.", ["I’m vegan."]),
    ("My sister Lena lives in Lisbon!", ["My sister Lena lives in Lisbon!"]),
    ("We moved to Porto in 2021.", ["We moved to Porto in 2021."]),
    ("Our dog is called Rex.", ["Our dog is called Rex."]),
    ("I ran 3.5 km this morning.", ["I ran 3.5 km this morning."]),
    # leading fillers and explicit requests to remember are dropped
    ("Hi, I'm Maya.", ["I'm Maya."]),
    ("Btw, my birthday is on May 2.", ["My birthday is on May 2."]),
    ("By the way, I work night shifts.", ["I work night shifts."]),
    ("Remember that I hate cilantro.", ["I hate cilantro."]),
    ("Please note that my flight leaves at 6.", ["My flight leaves at 6."]),
    # several sentences: only the statements
    (
        "I am vegetarian. What could I cook tonight? My oven is broken.",
        ["I am vegetarian.", "My oven is broken."],
    ),
    ("I like jazz\nwrite me a poem", ["I like jazz"]),
]

NOT_STATEMENTS = [
    "What could I cook tonight?",  # a question
    "Am I free on Friday?",
    "My sister?",  # first person, but a question
    "Write a short birthday message for my sister.",  # a command mentioning "my"
    "Tell me about my week.",
    "Please plan my Saturday.",
    "Let's plan my trip.",
    "I want you to write a poem.",  # speaks to the assistant
    "I like your answer.",
    "I need help with my taxes.",  # asks for something
    "I wonder what I should cook.",
    "I'd like to know the time.",
    "I see.",  # acknowledgements
    "I agree.",
    "I'm not sure.",
    "I don't know.",
    "Thanks!",
    "It is raining.",  # not about the user
    "Mine.",  # one word
    "",
    "   ",
    "myself and others",  # "myself" is not an opening first-person word
]


@pytest.mark.parametrize(("text", "expected"), STATEMENTS)
def test_first_person_statements_are_kept(text: str, expected: list[str]) -> None:
    assert list(personal_statements(text)) == expected


@pytest.mark.parametrize("text", NOT_STATEMENTS)
def test_questions_commands_and_fillers_are_not(text: str) -> None:
    assert personal_statements(text) == ()


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("I am vegetarian. What could I cook tonight?", "What could I cook tonight?"),
        ("What could I cook? I am vegetarian. Quick please.", "What could I cook? Quick please."),
        ("I like jazz\nwrite me a poem", "write me a poem"),
        ("I am vegetarian.", ""),
        ("Plan my day.", "Plan my day."),
    ],
)
def test_the_rest_is_the_message_without_its_statements(text: str, rest: str) -> None:
    assert split_statements(text).rest == rest
