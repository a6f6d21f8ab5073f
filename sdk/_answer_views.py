"""The cloud's view of the answers the user got, for the later turns of a chat.

A chat sends its earlier answers back as assistant turns. The user got each answer with the
text the device kept back (a span the context-lift policy held, a blocked span, the sign-off);
the cloud saw placeholders there, or nothing. Quoted as it is, an earlier answer would carry that
text to the cloud in the next turn's prompt. :class:`AnswerViews` remembers, on the device, the
cloud's view of each answer, and the texts kept back, so the prompt carries the view instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

__all__ = ["AnswerViews"]

#: How many answers, and how many kept-back texts, are remembered (the oldest go first).
REMEMBERED = 512

V = TypeVar("V")


class AnswerViews:
    """The cloud's view of recent answers, and the texts kept back from it.

    Args:
        conceal: the placeholder the cloud sees for a text kept back.
    """

    def __init__(self, conceal: Callable[[str], str], size: int = REMEMBERED) -> None:
        self._conceal = conceal
        self._size = size
        self._views: OrderedDict[str, str] = OrderedDict()
        self._kept: OrderedDict[str, None] = OrderedDict()

    def answered(self, text: str, public: str) -> None:
        """The user got ``text``; the cloud saw ``public``."""
        if text.strip() != public.strip():
            _put(self._views, text.strip(), public.strip(), self._size)

    def kept(self, text: str) -> None:
        """``text`` was kept back from the cloud."""
        if text.strip():
            _put(self._kept, text.strip(), None, self._size)

    def public(self, answer: str) -> str:
        """``answer`` as the cloud may see it: the cloud's own view of a known answer; in any
        other text (an answer cut short or edited), a placeholder for each text kept back."""
        view = self._views.get(answer.strip())
        if view is not None:
            return view
        for text in sorted(self._kept, key=len, reverse=True):
            if text in answer:
                answer = answer.replace(text, self._conceal(text))
        return answer


def _put(table: OrderedDict[str, V], key: str, value: V, size: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > size:
        table.popitem(last=False)
