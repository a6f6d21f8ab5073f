"""Marks each streamed piece of an answer by where it came from, for the web page.

The engine streams token ids as they become final; which of them the cloud accepted and which the
device chose in recovery is read off the verify exchange that produced them. :class:`RoundTap`
wraps the cloud verifier (the one seam every request passes, after the egress guard) and keeps
each request with its response; :class:`TokenMarker`, the ``on_tokens`` callback, pairs each
streamed batch with the exchange before it.

Kinds of piece: ``accepted`` (drafted on the device, accepted by the cloud), ``rejected`` (the
rest of that draft, which the answer does not keep; shown struck through), ``recovered`` (chosen
on the device from the cloud's top-k, steered by the private context), ``local`` (written on the
device without a cloud round: a draft kept back by the guard, or device-only decoding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from specsteer.cloud_adapter import (
    CloudVerifier,
    ForwardingVerifier,
    Text,
    VerifyRequest,
    VerifyResponse,
)

__all__ = ["RoundTap", "TokenMarker"]

Piece = dict[str, str]


class RoundTap(ForwardingVerifier):
    """Passes each call to ``inner`` and keeps the (request, response) pairs.

    It observes :meth:`transmit`, the step the egress guard calls with the adapter's own wire
    bytes, so wrapping an adapter (a vLLM completions body, say) changes nothing on the wire or
    in the audit log.
    """

    def __init__(self, inner: CloudVerifier) -> None:
        super().__init__(inner)
        self.exchanges: list[tuple[VerifyRequest, VerifyResponse]] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        response = super().transmit(request, wire)
        self.exchanges.append((request, response))
        return response


class TokenMarker:
    """The ``on_tokens`` callback: decodes each batch and hands ``emit`` its marked pieces.

    Args:
        decode: the device tokenizer's ``decode``.
        tap: the verifier tap of this assistant.
        emit: receives the list of pieces for each batch.
    """

    def __init__(
        self, decode: Callable[[list[int]], str], tap: RoundTap, emit: Callable[[list[Piece]], None]
    ) -> None:
        self.decode = decode
        self.tap = tap
        self.emit = emit
        self.ids: list[int] = []
        self.shown = 0
        self.seen = len(tap.exchanges)

    def __call__(self, new: list[int]) -> None:
        before, shown = list(self.ids), self.shown
        exchanges = self.tap.exchanges[self.seen :]
        self.seen = len(self.tap.exchanges)
        self.ids.extend(new)
        text = self.decode(self.ids)
        self.shown = len(text)
        tail = text[shown:]
        if not exchanges:
            self.emit([{"kind": "local", "text": tail}])
            return
        request, response = exchanges[-1]
        accepted_chars, rejected = self._split(before, shown, new, request, response)
        pieces = [
            {"kind": "accepted", "text": tail[:accepted_chars]},
            {"kind": "rejected", "text": rejected},
            {"kind": "recovered", "text": tail[accepted_chars:]},
        ]
        self.emit([p for p in pieces if p["text"]])

    def _split(
        self,
        before: list[int],
        shown: int,
        new: list[int],
        request: VerifyRequest,
        response: VerifyResponse,
    ) -> tuple[int, str]:
        """(characters of the batch the cloud accepted, text of the draft it rejected)."""
        n = response.n_accepted
        draft: Any = request.draft
        if isinstance(draft, Text):
            cut = draft.offsets[n - 1] if n else 0
            return cut, draft.text[cut:]
        ids = list(draft.ids)
        kept = len(self.decode(before + new[:n])) - shown
        whole = self.decode(before + ids)
        return max(0, kept), whole[len(self.decode(before + ids[:n])) :]
