"""How a draft travels and how the cloud's candidates come back: token ids or text.

The engine's loop is the same for both wire modes; what differs is written here, once:

* ``IdsWire``  -- device and cloud share a tokenizer: the draft goes as token ids, units are
  tokens, candidates are token ids;
* ``TextWire`` -- cross-vocabulary mode: the draft goes as text cut into units that end on whole
  characters, candidates are strings the device tokenizes again.

``IncrementalText`` decodes a growing token sequence by its new tokens only, so a round's cost
does not grow with the length of the answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from specsteer._errors import ProtocolError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import Text, TokenIds, VerifyResponse

__all__ = ["Candidates", "IdsWire", "IncrementalText", "TextWire", "WireDraft", "WireFormat"]

#: The replacement character a decoder emits for an incomplete UTF-8 sequence.
PARTIAL = "\ufffd"

#: Extra tokens a text-mode draft may take to complete a character split over several tokens.
MAX_COMPLETION = 8

#: Tokens decoded again before the first new token, so that a tokenizer's handling of the start
#: of a text (a dropped leading space) never touches the new part.
_OVERLAP = 4


class IncrementalText:
    """Text of a token sequence that grows, shrinks and grows again, by decoding the new part only.

    Positions where the text is complete (it does not end inside a character) are remembered;
    a call decodes from a few tokens before the last such position its sequence shares with the
    previous call, and reuses the text before it.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._marks: dict[int, int] = {0: 0}  # token position -> length of the text before it
        self._text = ""

    def __call__(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        shared = _common_prefix(self._ids, ids)
        marks = sorted(p for p in self._marks if p <= shared)
        anchor = marks[-1]
        # The overlap must hold some text: tokens that decode to nothing (special tokens) would
        # leave the join between the old text and the new (a space, say) undecided.
        start = next(
            (
                p
                for p in reversed(marks)
                if p <= anchor - _OVERLAP and self._marks[p] < self._marks[anchor]
            ),
            0,
        )
        head = self._decode(ids[start:anchor])
        tail = self._decode(ids[start:])
        if tail.startswith(head):
            text = self._text[: self._marks[anchor]] + tail[len(head) :]
        else:  # the tokenizer joins across the anchor: decode it all
            text = self._decode(ids)
        self._ids, self._text = ids, text
        self._marks = {p: n for p, n in self._marks.items() if p <= shared}
        if not text.endswith(PARTIAL):
            self._marks[len(ids)] = len(text)
        if len(self._marks) > 64:
            self._marks = dict(sorted(self._marks.items())[-32:]) | {0: 0}
        return text


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if list(a[:n]) == list(b[:n]):
        return n
    i = 0
    while a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True)
class WireDraft:
    """A draft as it travels."""

    tokens: list[int]  # the device tokens that travel (text: a trailing incomplete run dropped)
    prefix: TokenIds | Text  # the accepted answer before the draft, as the cloud sees it
    span: TokenIds | Text
    #: Device tokens per unit (text mode; the end-of-answer unit included); None: one per token.
    counts: list[int] | None = None


@dataclass(frozen=True)
class Candidates:
    """The cloud's top-k at the recovery position, in device terms."""

    first: torch.Tensor  # [k] long: the device token each candidate starts with
    logprobs: torch.Tensor  # [k] float64: the cloud's log-probability of each
    tokens: list[list[int]]  # the device tokens each candidate stands for
    #: Draws from the cloud's whole distribution there, as (token, log-probability), in draw
    #: order; empty when the cloud sent none (token-id mode only).
    samples: tuple[tuple[int, float], ...] = ()

    def without(self, ids: frozenset[int]) -> Candidates:
        """The candidates that do not start with one of ``ids``: the end tokens of a run that
        ignores them (taking one would add nothing, and the round would repeat itself), or a
        token the device ruled out at this position (a refusal's start).

        Raises:
            ProtocolError: every candidate starts with one of ``ids``.
        """
        keep = [i for i, t in enumerate(self.tokens) if t[0] not in ids]
        if not keep:
            raise ProtocolError(
                "every candidate the cloud offered is ruled out on the device (it ends an "
                "answer that ignores the end, or starts a refusal)"
            )
        index = torch.tensor(keep, dtype=torch.long)
        samples = tuple(s for s in self.samples if s[0] not in ids)
        return Candidates(
            self.first[index], self.logprobs[index], [self.tokens[i] for i in keep], samples
        )


class WireFormat(ABC):
    """What differs between the wire modes."""

    #: The vocabulary digest sent with token ids (None in text mode).
    tokenizer: str | None = None

    @abstractmethod
    def incomplete(self, pub_out: list[int], draft: list[int]) -> bool:
        """Whether ``draft`` ends inside a character (drafting then goes on a little)."""

    @abstractmethod
    def cut(self, pub_out: list[int], draft: list[int], eos: frozenset[int]) -> WireDraft:
        """The draft as it travels, after the public answer ``pub_out``."""

    @abstractmethod
    def candidates(self, response: VerifyResponse) -> Candidates:
        """The response's top-k as device tokens.

        Raises:
            ProtocolError: none of them is something the device can write.
        """

    def accepted(self, draft: WireDraft, n_units: int) -> int:
        """Device tokens in the first ``n_units`` units of ``draft``."""
        return n_units if draft.counts is None else sum(draft.counts[:n_units])

    def per_unit(self, values: list[float], draft: WireDraft) -> list[float]:
        """Per-token log-probabilities summed into per-unit ones (clamped to <= 0)."""
        if draft.counts is None:
            return values
        out: list[float] = []
        i = 0
        for c in draft.counts:
            out.append(min(0.0, sum(values[i : i + c])))
            i += c
        return out


class IdsWire(WireFormat):
    """Token ids on the wire: device and cloud share a tokenizer."""

    def __init__(self, device: ModelBackend) -> None:
        self.tokenizer = device.tokenizer_fingerprint()

    def incomplete(self, pub_out: list[int], draft: list[int]) -> bool:
        return False

    def cut(self, pub_out: list[int], draft: list[int], eos: frozenset[int]) -> WireDraft:
        return WireDraft(tokens=draft, prefix=TokenIds(ids=pub_out), span=TokenIds(ids=draft))

    def candidates(self, response: VerifyResponse) -> Candidates:
        ids = response.top_k.ids or []
        drawn = response.samples
        return Candidates(
            first=torch.tensor(ids, dtype=torch.long),
            logprobs=torch.tensor(response.top_k.logprobs, dtype=torch.float64),
            tokens=[[i] for i in ids],
            samples=tuple(zip(drawn.ids, drawn.logprobs, strict=True)) if drawn else (),
        )


class TextWire(WireFormat):
    """Text on the wire (cross-vocabulary mode): units end on whole characters."""

    def __init__(self, device: ModelBackend) -> None:
        self.device = device
        self._text = IncrementalText(lambda ids: device.decode(ids, skip_special_tokens=False))

    def incomplete(self, pub_out: list[int], draft: list[int]) -> bool:
        return self._text(pub_out + draft).endswith(PARTIAL)

    def cut(self, pub_out: list[int], draft: list[int], eos: frozenset[int]) -> WireDraft:
        end = bool(draft) and draft[-1] in eos
        body = draft[:-1] if end else draft
        prefix = last = self._text(pub_out)
        offsets: list[int] = []
        counts: list[int] = []
        pending = 0
        for i in range(len(body)):
            pending += 1
            text = self._text(pub_out + body[: i + 1])
            if len(text) > len(last) and text.startswith(last) and not text.endswith(PARTIAL):
                offsets.append(len(text) - len(prefix))
                counts.append(pending)
                pending, last = 0, text
        if pending:  # the draft ends inside a character: those tokens wait for the next round
            body, end = body[: len(body) - pending], False
        if end:
            counts.append(1)
        return WireDraft(
            tokens=[*body, draft[-1]] if end else body,
            prefix=Text(text=prefix),
            span=Text(text=last[len(prefix) :], offsets=offsets, eos=end),
            counts=counts,
        )

    def candidates(self, response: VerifyResponse) -> Candidates:
        """Each string is scored on the device by its first device token (``""`` is the end of
        the answer); strings the device tokenizer renders as nothing are dropped."""
        tokens: list[list[int]] = []
        logprobs: list[float] = []
        for text, lp in zip(response.top_k.strings or [], response.top_k.logprobs, strict=True):
            ids = [self.device.end_token_id] if text == "" else self.device.encode(text)
            if ids:
                tokens.append(ids)
                logprobs.append(lp)
        if not tokens:
            raise ProtocolError("none of the cloud's candidates is text the device can write")
        return Candidates(
            first=torch.tensor([t[0] for t in tokens], dtype=torch.long),
            logprobs=torch.tensor(logprobs, dtype=torch.float64),
            tokens=tokens,
        )
