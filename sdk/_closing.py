"""The user's sign-off at the end of a text to a person.

A text to a person ends the way the user ends their messages ("Talk soon, Emre", from the
persona). The device adds it after the last round, before the end token, where the text ended on
its own and does not already end with the user's name; no model writes it and the cloud never
sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from specsteer._answer import Answer
from specsteer._events import RoundEvent, Tokens

__all__ = ["signed", "with_sign_off"]


def signed(text: str, sign_off: str) -> bool:
    """Whether ``text`` already ends with the user's name or sign-off (its last line holds the
    name ``sign_off`` ends with: "Emre" of "Talk soon, Emre")."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    words = sign_off.replace(",", " ").split()
    if not lines or not words:
        return False
    return words[-1].casefold() in lines[-1].casefold()


def with_sign_off(
    events: Iterator[RoundEvent],
    answer: Answer,
    sign_off: str,
    encode: Callable[[str], list[int]],
    decode: Callable[[Sequence[int]], str],
) -> Iterator[RoundEvent]:
    """``events`` with the sign-off put before the end token that ends ``answer``: the event that
    carries the end is split around a :class:`Tokens` event of kind ``"persona"``."""
    events = iter(events)
    for event in events:
        if not (isinstance(event, Tokens) and answer.ended and event.ids):
            yield event
            continue
        *body, end = event.ids
        ids = encode("\n\n" + sign_off)
        text = decode(answer.tokens[:-1])
        if end not in answer.eos or signed(text, sign_off) or not answer.sign(ids):
            yield event
            yield from events
            return
        if body:
            yield Tokens(tuple(body), event.kind, event.kept)
        yield Tokens(tuple(ids), "persona")
        yield Tokens((end,), event.kind, event.kept)
        yield from events
        return
