"""Marks each streamed piece of an answer by where it came from, for the web page.

A fold over the engine's round events (:mod:`specsteer._events`): each :class:`Tokens` event is
a piece of the kind it names, and each verified :class:`Round` adds the part of its draft the
cloud rejected, shown struck through between the accepted text and the device's recovery.

Kinds of piece: ``accepted`` (drafted on the device, accepted by the cloud), ``rejected`` (the
rest of that draft, which the answer does not keep), ``recovered`` (chosen on the device from the
cloud's top-k, steered by the private context), ``local`` (written on the device without a cloud
round: a draft kept back by the guard, device-only decoding, or the user's sign-off), ``cloud``
(the cloud model alone). A piece the cloud's view holds a placeholder for says why in ``kept``
(``guard``, ``refused``, or ``lift``: the context-lift policy kept it on the device).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from specsteer._events import Round, RoundEvent, TextFold, Tokens

__all__ = ["PieceMarker"]

Piece = dict[str, str]

#: The page's kind of piece for each kind of token.
_KINDS = {
    "accepted": "accepted",
    "recovered": "recovered",
    "local": "local",
    "device": "local",
    "cloud": "cloud",
    "persona": "local",
}


class PieceMarker:
    """Turns round events into the page's marked pieces.

    Args:
        decode: the device tokenizer's ``decode``.
        eos: the device model's end tokens.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str], eos: frozenset[int]) -> None:
        self.text = TextFold(decode, eos)

    def add(self, event: RoundEvent) -> list[Piece]:
        """The pieces ``event`` adds (none for events that carry no text)."""
        if isinstance(event, Tokens):
            text = self.text.add(event)
            if not text:
                return []
            piece = {"kind": _KINDS[event.kind], "text": text}
            if event.kept is not None:  # the cloud's view holds a placeholder instead
                piece["kept"] = event.kept
            return [piece]
        if isinstance(event, Round) and not event.local and event.rejected:
            text = self.text.after(event.rejected)
            return [{"kind": "rejected", "text": text}] if text else []
        return []
