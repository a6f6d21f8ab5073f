"""Who an answer speaks to, placeholders, refusals and restated requests: each definition in
docs/evaluation.md as a table of answers that must count and near-misses that must not."""

from __future__ import annotations

import pytest

from specsteer._eval_people import (
    addresses_self,
    greeted_names,
    has_placeholder,
    is_refusal,
    restates_request,
    speaks_of_reader,
    wrong_recipient,
)


@pytest.mark.parametrize(
    ("answer", "names"),
    [
        ("Hi Lena!\nHow is Lisbon?\nCheers,\nMaya", ["Lena"]),
        ("Dear Ms Levi,\nThe boiler still bangs.", ["Ms Levi"]),
        ("Good morning, Mrs. Levi. The tap leaks.", ["Mrs. Levi"]),
        ("Happy birthday, Lena! I booked two seats.", ["Lena"]),
        ("Lena,\nCan we swap on Friday?", ["Lena"]),
        ("Maya, on March 14th, is a beautiful day for you.", ["Maya"]),
        ("Hey Ines! I'm really excited to plan a trip for you", ["Ines"]),
        ("hi there Lena, free tonight?", ["Lena"]),
        ("Dear [Neighbour's Name], I am writing to introduce myself", ["[Neighbour's Name]"]),
        ("Hi Lena! Sorry. Hi Tomás, too.", ["Lena", "Tomás"]),
        # Near-misses: signatures, interjections, headings, names that nobody is greeted by.
        ("See you Sunday!\nCheers,\nMaya", []),
        ("Absolutely! Here is a plan for Saturday.", []),
        ("Packing list for Kyoto: walking shoes.", []),
        ("Tonight I could cook risotto for Lena and me.", []),
        ("Hello!\nTalk soon,\nMaya", []),
        ("Warmly, Jun.", []),  # a signature alone is not a greeting
        ("Talk soon, Jun!", []),
        ("Hi there, are you free?", []),
        ("Dear landlord, the tap leaks.", []),
        ("I told Lena, and she laughed.", []),
    ],
)
def test_greeted_names(answer: str, names: list[str]) -> None:
    assert greeted_names(answer) == names


@pytest.mark.parametrize(
    ("answer", "writer", "expected"),
    [
        ("Maya, on March 14th, is a beautiful day.", "Maya", True),
        ("Hey Ines! I'm excited to plan a trip for you.", "Ines", True),
        ("Hi Maya! Happy birthday.", "Maya Okafor", True),  # a first name is the same person
        ("Dear Maya Okafor,", "Maya", True),
        ("Hey Inês!", "Ines", True),  # accents and case ignored
        # Near-misses: the user signs, is mentioned, or the greeting is someone else's.
        ("Hi Lena!\nSee you soon.\nLove,\nMaya", "Maya", False),
        ("Hi Lena! Maya here, your sister.", "Maya", False),
        ("Happy birthday, Lena!", "Maya", False),
        ("Hi Mayank!", "Maya", False),
        ("Hi Lena!", "", None),
    ],
)
def test_addresses_self(answer: str, writer: str, expected: bool | None) -> None:
    assert addresses_self(answer, writer) is expected


@pytest.mark.parametrize(
    ("answer", "recipient", "expected"),
    [
        ("Maya, on March 14th, is a beautiful day.", "Lena", True),
        ("Dear Mr Costa, the boiler bangs.", "Ms Levi", True),
        ("Hi Inês! Shall we hike?", "Gabriela", True),
        ("Hi Lena! Then: Hi Maya.", "Maya", True),  # the first greeting is the salutation
        # Near-misses: the right person in another spelling, a slot, or no greeting at all.
        ("Dear Mrs. Levi, the boiler bangs.", "Ms Levi", False),
        ("Dear Levi,", "Ms Levi", False),
        ("Hi Ines!", "Inês", False),
        ("Dear [Landlord's Name],", "Ms Levi", False),
        ("Are you free on Sunday? Let's hike.", "Inês", False),
        ("Dear landlord, the boiler bangs.", "Ms Levi", False),
        ("Hi Ines!", "", None),
    ],
)
def test_wrong_recipient(answer: str, recipient: str, expected: bool | None) -> None:
    assert wrong_recipient(answer, recipient) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("I am writing to introduce myself as [Your Name].", True),
        ("Hi [Friend's Name]!", True),
        ("See you on [date].", True),
        ("Hello {name}, welcome", True),
        ("Best, <Your Name>", True),
        # Near-misses: checkboxes, footnotes, links, tags, parentheses.
        ("- [ ] passport\n- [x] charger", False),
        ("As noted [1], it rains.", False),
        ("See [the menu](https://example.org).", False),
        ("Use <b> for bold", False),
        ("Gabriela (my partner) agrees.", False),
        ("No slots here.", False),
    ],
)
def test_has_placeholder(answer: str, expected: bool) -> None:
    assert has_placeholder(answer) is expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("I'm sorry, but I can't assist with that.", True),
        ("I’m sorry, but I can’t help with that request.", True),
        ("I cannot fulfill this request.", True),
        ("Sorry, I am unable to write that review.", True),
        ("I'm afraid I won't be able to help you with that.", True),
        ("As an AI, I do not have personal experiences, but here is a review.", True),
        ("Hi Yasmin,\n\nI'm sorry, but I can't assist with that request.", True),
        # Near-misses: apologies and inabilities inside a personal message.
        ("Sorry, I can't make it on Saturday. Shall we try Sunday?", False),
        ("I can't help smiling when I think of Lisbon.", False),
        ("I can't wait to see you!", False),
        ("Hi Lena! I can't believe it is your birthday. I can't help with the cake, sorry.", False),
        ("Happy birthday! I'm sorry I missed your call.", False),
        ("Hi! Lovely day. Anyway, I cannot help with that, says Tom.", False),  # third sentence
        ("", False),
    ],
)
def test_is_refusal(answer: str, expected: bool) -> None:
    assert is_refusal(answer) is expected


REVIEW = 'I bought "Trail Runner 2" and I give it 4 stars. Draft the review text I will post.'


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('I bought "Trail Runner 2" and I give it 4 stars.', True),
        ("Sure! I bought Trail Runner 2 and I give it 4 stars. Draft the review text.", True),
        ("Draft the review text I will post", True),
        # Near-misses: a request quoted once inside a real answer, or no run of four words.
        (
            "I bought Trail Runner 2 and I give it 4 stars. They grip on wet rock, the heel "
            "never slipped on the Madeira levadas, and after 300 km the soles are fine. Half a "
            "size small, though, so order up.",
            False,
        ),
        ("Four stars: the Trail Runner 2 grips well and dries fast.", False),
        ("I bought them for a trip.", False),
        ("", False),
    ],
)
def test_restates_request(answer: str, expected: bool) -> None:
    assert restates_request(answer, REVIEW) is expected


def test_restating_a_short_request_counts_its_whole_length() -> None:
    assert restates_request("Review my shoes", "Review my shoes")
    assert not restates_request("My shoes are great and light for running.", "Review my shoes")


@pytest.mark.parametrize(
    ("answer", "reader", "expected"),
    [
        ("Happy birthday, Camila! My sister Camila lives in Mexico City.", "Camila", True),
        ("Hi Ren, I'm writing to ask my colleague, Ren, for a swap.", "Ren", True),
        ("Hi Inês! our best friend Inês says hi.", "Inês", True),
        ("Dear Mr Herrera, my landlord Mr Herrera has not fixed it.", "Mr Herrera", True),
        ("Happy birthday, Camila! You're the best sister, my dear Camila.", "Camila", False),
        ("Hi Camila! My sister came over yesterday.", "Camila", False),
        ("Hi Camila! My sister Camille says hi.", "Camila", False),
        ("Hi Camila! My sister Camila lives in Mexico City.", "", None),
    ],
)
def test_speaks_of_reader(answer: str, reader: str, expected: bool | None) -> None:
    assert speaks_of_reader(answer, reader) is expected
