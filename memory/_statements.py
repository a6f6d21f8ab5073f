"""Which sentences of a user's message are statements about themselves, worth remembering.

The rule, sentence by sentence:

1. A question is never a statement: it ends with ``?``.
2. Leading words that carry nothing are skipped: greetings and fillers (``hi``, ``ok``, ``also``,
   ``btw``, ``by the way``, ...) and explicit requests to remember (``remember that``,
   ``note that``, ``for the record``).
3. What is left must start with the user speaking of themselves: ``I``, ``I'm``, ``I've``,
   ``I'd``, ``I'll``, ``my``, ``we``, ``we're``, ``our``, ... So commands (``write a message
   for my sister``, ``tell me ...``, ``please ...``, ``let's ...``) are not statements.
4. A sentence that speaks to the assistant (``you``, ``your``) is about the conversation, not
   the user (``I want you to ...``, ``I like your answer``); asking for something (``I wonder
   ...``, ``I need help ...``, ``I'd like to know ...``) is a request; acknowledgements
   (``I see``, ``I agree``, ``I'm not sure``) say nothing about the user.
5. It needs at least two words.

The statement kept is the sentence from its first-person word on, with a capital first letter.
The rule is deliberately narrow: a statement it misses can be stored with ``memory add``, while
a question or a command it stored by mistake would come back in later answers as if it were a
fact about the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Statements", "personal_statements", "split_statements"]

#: A sentence: text up to and including its end mark, or a line without one.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?]+(?![.!?\s]|$))*(?:[.!?]+|\n|$)")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")

# fmt: off
_FIRST_PERSON = frozenset((
    "i", "i'm", "im", "i've", "i'd", "i'll", "my", "mine",
    "we", "we're", "we've", "we'd", "we'll", "our", "ours",
))
_YOU = frozenset(("you", "you're", "you've", "you'd", "you'll", "your", "yours", "yourself", "u"))
#: Leading words skipped before the first-person word (one at a time, or as a phrase).
_LEAD_WORDS = frozenset((
    "hi", "hello", "hey", "ok", "okay", "so", "also", "and", "but", "oh", "well", "actually",
    "btw", "fyi", "anyway", "yes", "yeah", "no", "note", "remember", "just",
))
# fmt: on
_LEAD_PHRASES = (
    ("by", "the", "way"),
    ("for", "the", "record"),
    ("please", "remember", "that"),
    ("please", "note", "that"),
    ("remember", "that"),
    ("note", "that"),
    ("keep", "in", "mind", "that"),
    ("please", "remember"),
)
#: Openings that ask for something rather than state something.
_REQUESTS = (
    ("i", "wonder"),
    ("i", "was", "wondering"),
    ("i", "need", "help"),
    ("i", "want", "to", "know"),
    ("i", "would", "like", "to", "know"),
    ("i'd", "like", "to", "know"),
    ("i", "need", "to", "know"),
)
#: Whole sentences that acknowledge rather than inform.
_FILLERS = frozenset(
    " ".join(words)
    for words in (
        ("i", "see"),
        ("i", "agree"),
        ("i", "guess"),
        ("i", "know"),
        ("i", "understand"),
        ("i", "mean"),
        ("i", "think", "so"),
        ("i", "don't", "know"),
        ("i", "don't", "think", "so"),
        ("i'm", "not", "sure"),
        ("i", "am", "not", "sure"),
        ("i'm", "fine"),
        ("i'm", "good"),
        ("i'm", "ok"),
        ("i'm", "okay"),
        ("i", "do"),
        ("i", "don't"),
        ("i", "am"),
        ("my", "bad"),
        ("my", "pleasure"),
    )
)


@dataclass(frozen=True)
class Statements:
    """A message split into the user's statements about themselves and the rest.

    Attributes:
        statements: The statements worth remembering, as they would be stored.
        rest: The message without the sentences those statements came from (whitespace between
            the remaining sentences kept as one space or newline).
    """

    statements: tuple[str, ...]
    rest: str


def split_statements(text: str) -> Statements:
    """Split ``text`` into first-person statements (see the module's rule) and the rest.

    Example:
        >>> s = split_statements("I am vegetarian. What could I cook tonight?")
        >>> s.statements, s.rest
        (('I am vegetarian.',), 'What could I cook tonight?')
    """
    kept: list[str] = []
    rest: list[str] = []
    for match in _SENTENCE.finditer(text):
        sentence = match.group()
        statement = _statement(sentence)
        if statement is None:
            rest.append(sentence)
        else:
            kept.append(statement)
            if sentence.endswith("\n"):
                rest.append("\n")
    joined = re.sub(r"[ \t]*\n\s*", "\n", re.sub(r"[ \t]{2,}", " ", "".join(rest)))
    return Statements(tuple(kept), joined.strip())


def personal_statements(text: str) -> tuple[str, ...]:
    """The first-person statements in ``text`` worth remembering (see the module's rule)."""
    return split_statements(text).statements


def _statement(sentence: str) -> str | None:
    body = sentence.strip()
    if not body or body.endswith("?"):
        return None
    matches = list(_WORD.finditer(body))
    words = [m.group().lower().replace("’", "'") for m in matches]
    start = _after_lead(words)
    words = words[start:]
    if len(words) < 2 or words[0] not in _FIRST_PERSON:
        return None
    if _YOU.intersection(words) or " ".join(words) in _FILLERS:
        return None
    if any(tuple(words[: len(r)]) == r for r in _REQUESTS):
        return None
    text = body[matches[start].start() :].strip()
    return text[0].upper() + text[1:]


def _after_lead(words: list[str]) -> int:
    i = 0
    while i < len(words):
        phrase = next((p for p in _LEAD_PHRASES if tuple(words[i : i + len(p)]) == p), None)
        if phrase is not None:
            i += len(phrase)
        elif words[i] in _LEAD_WORDS:
            i += 1
        else:
            break
    return i
