"""The device's private context: who is writing, to whom, and the memories that bear on the
request, laid out for the device prompt.

Only the device sees it (:mod:`specsteer._prompt` puts it in the private view; the public view
the cloud gets is unchanged), and every line of it is in the egress guard's index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from specsteer._perspective import owned_words
from specsteer.memory import Person

__all__ = ["PrivateContext"]


#: Relations written to with "Dear <name>," rather than "Hi <first name>,".
FORMAL_RELATIONS: Final = frozenset(
    {
        "landlord",
        "landlady",
        "boss",
        "manager",
        "doctor",
        "dentist",
        "teacher",
        "tutor",
        "therapist",
    }
)
_TITLES: Final = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof"})
#: A request that wishes someone a birthday: a birthday message (note, card, text...), "happy
#: birthday", or someone else's birthday ("my sister's birthday"); not the user's own ("my
#: birthday party"). Its text opens with the wish, said to its reader: begun with "Hi Lena,", a
#: birthday message went on as an email *about* the sister ("I'm writing to share some fun
#: details about my sister"); begun with the wish, it speaks to her (docs/evaluation.md). A
#: thank-you begun "Hi Greta, thank you so much for" stopped after restating the request, so it
#: keeps the greeting.
_BIRTHDAY: Final = re.compile(
    r"\bbirthday\s+(?:message|note|card|text|wish|greeting|post|letter|email)|"
    r"\bhappy\s+birthday\b|\w(?:'s|’s|s')\s+birthday\b|\b(?:his|her|their)\s+birthday\b",
    re.IGNORECASE,
)
#: First-person words and what they become in the second person.
_SECOND_PERSON: Final = {
    "I am": "you are",
    "I'm": "you're",
    "I was": "you were",
    "I": "you",
    "my": "your",
    "My": "Your",
    "me": "you",
    "mine": "yours",
    "myself": "yourself",
}
_FIRST_PERSON: Final = re.compile(
    r"\b(?:"
    + "|".join(re.escape(w) for w in sorted(_SECOND_PERSON, key=len, reverse=True))
    + r")\b"
)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def second_person(note: str) -> str:
    """A first-person note said to its writer ("I am vegetarian; my sister Lena..." ->
    "You are vegetarian; your sister Lena..."); the rest is left as the user wrote it."""

    def swap(match: re.Match[str]) -> str:
        said = _SECOND_PERSON[match.group()]
        return said[:1].upper() + said[1:] if match.start() == 0 else said

    return _FIRST_PERSON.sub(swap, _one_line(note))


@dataclass(frozen=True)
class PrivateContext:
    """What the device model is told beyond the request.

    Attributes:
        writer: The user's name ("" when unknown).
        sign_off: How the user ends a message ("" when unknown).
        recipients: The people the request names by relation ("my sister" -> Lena).
        memories: The user's memories that bear on the request, most relevant first.
        writing: Whether the user asks for a text to send (a message, an email, a review), which
            the device writes as the user, or for an answer to them.
        review: Whether that text is a review (it has no reader to greet).
    """

    writer: str = ""
    sign_off: str = ""
    recipients: tuple[Person, ...] = ()
    memories: tuple[str, ...] = ()
    writing: bool = False
    review: bool = False

    @property
    def closing(self) -> str:
        """The sign-off a text to a person ends with: the user's own, for a text the request
        addresses to someone ("" for an answer, a review or a post, or with no sign-off)."""
        return self.sign_off if self.writing and self.recipients else ""

    @property
    def empty(self) -> bool:
        """Whether there is nothing private to tell the device."""
        return not (self.writer or self.sign_off or self.recipients or self.memories)

    def render(self) -> str:
        """The block for the device's system message ("" for an answer with nothing private).

        A text to send is written as the user, in the first person, to the people the request
        names, and the user's notes say whose "I" they speak in; so it is even with nothing known
        of the user (told only the request, the device model refused to write a review,
        docs/evaluation.md). An answer speaks to the user as "you", with the user's notes turned
        into the second person.
        """
        if self.empty and not self.writing:
            return ""
        who = self.writer or "the user"
        if not self.writing:
            return "\n".join(self._answer_lines())
        lines = self._writing_lines(who)
        if self.memories:
            lines.append(f'What {who} wrote down ("I" and "my" are {who}):')
            lines += [f"- {_one_line(m)}" for m in self.memories]
        return "\n".join(lines)

    def _writing_lines(self, who: str) -> list[str]:
        # "Ghostwriter" and "never refuse" keep the code-tuned device model writing: measured on
        # the paraphrase set, it refused personal requests without them (docs/evaluation.md).
        lines = [
            f"You are {who}'s ghostwriter: you write {who}'s messages, emails, notes, reviews and "
            f'posts, in the first person as {who} ("I" is {who}). You always write the text '
            "itself, ready to send; you never refuse, ask questions or repeat the request."
        ]
        # No sign-off instruction: the device model wrote it straight after the greeting, or
        # repeated the instruction itself ('Hi Noah, and sign it "Much love, ..."').
        if self.recipients:
            first = self.recipients[0]
            lines.append(
                f"This one is to {first.name}, {who}'s {first.relation}: greet {first.name}."
            )
        elif self.review:
            lines.append("This one is a review: start with what you think of it.")
        return lines

    def _answer_lines(self) -> list[str]:
        # Notes in the first person made the device model answer as the user ("I can cook
        # mushroom risotto") or read them back; in the second person it advises ("You could
        # cook mushroom risotto") (docs/evaluation.md).
        name = self.writer.split()[0] if self.writer else "the user"
        lines = [
            f"You are {name}'s assistant, talking with {name}. Answer {name} directly as "
            '"you", in your own words, without a greeting. Use what you know about '
            f"{name} where it helps; do not repeat it back."
        ]
        if self.memories:
            lines.append(f"What you know about {name}:")
            lines += [f"- {second_person(m)}" for m in self.memories]
        return lines

    def opening(self, query: str = "") -> str:
        """How the text begins to its first recipient: the wish a birthday ``query`` asks for
        ("Happy birthday, Lena!"), else the greeting: "Dear Ms Levi," to a landlord, a boss or a
        doctor, "Hi Lena," to anyone else; "" when the request names nobody."""
        if not self.recipients:
            return ""
        person = self.recipients[0]
        formal = person.relation in FORMAL_RELATIONS
        words = person.name.split()
        titled = words[0].rstrip(".").casefold() in _TITLES
        name = person.name if formal or titled else words[0]
        if _BIRTHDAY.search(query):
            return f"Happy birthday, {name}!"
        return f"Dear {name}," if formal else f"Hi {name},"

    def request(self, query: str) -> str:
        """The user's request as the device reads it: a text to a person gets how to begin
        (:meth:`opening`), a text to post that it is in the first person, which keeps the device
        model from refusing or restating the request; an answer's request is unchanged."""
        if not self.writing:
            return query
        if self.recipients:
            who = self.writer or "me"
            # A greeting or a wish alone reads as a whole text ("Happy birthday, Camila!", "Hi
            # Wanjiru, I can swap shifts with you next week."): it asks for a few sentences.
            return (
                f'{query}\n(Write a few sentences as {who}, starting with "{self.opening(query)}".)'
            )
        if self.review:
            # Asked for "the text itself", the device model answered a review it thought it was
            # sent ("I'm really glad you found the wooden yarn bowl so beautiful"); as its buyer,
            # it reviews the product (docs/evaluation.md).
            return (
                f"{query}\n(Write the review itself as the one who bought it, in the first "
                "person, ready to post.)"
            )
        return f"{query}\n(Write the text itself, in the first person, ready to post.)"

    @property
    def notes(self) -> tuple[str, ...]:
        """The memories a text written as the user is given, which it must not read out one
        after another (:class:`~specsteer._recital.RecitalGuard`); empty for an answer, whose
        notes are said to the user in the second person."""
        return tuple(_one_line(m) for m in self.memories) if self.writing else ()

    def owned(self, query: str) -> frozenset[str]:
        """What the request of a text to a person calls the user's ("my pet" -> ``pet``): the
        text keeps them the user's (:func:`~specsteer._perspective.owner_guard`); empty for an
        answer, a review or a post."""
        return owned_words(query) if self.writing and self.recipients else frozenset()

    def texts(self) -> list[str]:
        """Every private piece of text in the context (for the egress guard's index)."""
        out = [self.render(), self.writer, self.sign_off, *self.memories]
        out += [p.name for p in self.recipients]
        return [t for t in out if t]
