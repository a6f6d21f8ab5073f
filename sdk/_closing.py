"""The user's sign-off at the end of a text to a person.

A text to a person ends the way the user ends their messages ("Talk soon, Emre", from the
persona). The device adds it after the last round, before the end token, where the text ended on
its own and does not already end with the user's name; no model writes it and the cloud never
sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from specsteer._answer import Answer
from specsteer._events import RoundEvent, Tokens
from specsteer.memory._persona_infer import CLOSINGS

__all__ = ["signed", "spacing", "with_sign_off"]


#: A line that closes a text: a closing phrase ("Best regards," / "Cheers, Sam") or a slot for
#: the name ("[Your name]").
_CLOSING_LINE = re.compile(
    rf"^(?:(?:{'|'.join(re.escape(c) for c in CLOSINGS)})(?:\s*[,!.]?|,\s*\S+)|\[[^\]]*\])$",
    re.IGNORECASE,
)


def signed(text: str, sign_off: str) -> bool:
    """Whether ``text`` already ends with a sign-off: its last line holds the name ``sign_off``
    ends with ("Emre" of "Talk soon, Emre"), or one of its last two lines is a closing of its own
    ("Best regards," then "[Your name]"), which a second one would only follow."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    words = sign_off.replace(",", " ").split()
    if not lines or not words:
        return False
    if words[-1].casefold() in lines[-1].casefold():
        return True
    return any(_CLOSING_LINE.match(line) for line in lines[-2:])


def spacing(text: str) -> str:
    """The line breaks that go before the sign-off: a blank line, less the breaks ``text``
    already ends with (it ended after one, before a sentence that would read out a note)."""
    return "\n\n"[len(text) - len(text.rstrip("\n")) :]


def with_sign_off(
    events: Iterable[RoundEvent],
    answer: Answer,
    sign_off: str,
    encode: Callable[[str], list[int]],
    decode: Callable[[Sequence[int]], str],
) -> Iterator[RoundEvent]:
    """``events`` with the sign-off put before the end token that ends ``answer``: the event that
    carries the end is split around a :class:`Tokens` event of kind ``"persona"``."""
    events = iter(events)
    for event in events:
        if isinstance(event, Tokens) and answer.ended and event.ids:
            yield from _split(event, answer, sign_off, encode, decode)
            break
        yield event
    yield from events


def _split(
    event: Tokens,
    answer: Answer,
    sign_off: str,
    encode: Callable[[str], list[int]],
    decode: Callable[[Sequence[int]], str],
) -> Iterator[Tokens]:
    """The event that ended ``answer``, split around the sign-off where it goes in; as it was
    where the text was signed already or has no room for it."""
    *body, end = event.ids
    text = decode(answer.tokens[:-1])
    ids = encode(spacing(text) + sign_off)
    if end not in answer.eos or signed(text, sign_off) or not answer.sign(ids):
        yield event
        return
    if body:
        yield Tokens(tuple(body), event.kind, event.kept)
    yield Tokens(tuple(ids), "persona")
    yield Tokens((end,), event.kind, event.kept)
