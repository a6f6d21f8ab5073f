"""Cross-vocabulary verification: the cloud's side when device and cloud tokenizers differ.

The request carries text. The cloud tokenizes ``prefix + draft`` with its own tokenizer and cuts
the draft into *segments* at character offsets that end both a device unit and a cloud token.
Each segment is accepted or rejected as a whole: its cloud log-probability (the sum over its
cloud tokens) against ``lam ** n * P_S0`` (the device's context-free log-probabilities summed
over its ``n`` device units). A draft tail that ends at no shared boundary cannot be judged and
counts as not accepted. The top-k candidates at the first position not accepted are the cloud's
next-token strings; ``""`` stands for its end-of-turn token.

When the accepted text ends inside one of the cloud's tokens of ``prefix + draft`` (prefix
``"Dear Len"``, draft ``"a,"``, cloud token ``" Lena"``), that token's probability counts the
accepted characters again; the first segment is scored with it conditioned on them
(:func:`straddle`).

With identical tokenizers, a draft whose every unit is one token, and a text the cloud tokenizes
back into the device's own tokens, this gives the token-id mode's answer exactly (same draws,
same order). A character split over several byte tokens is one unit here (one test, ``lam``
once) but several tokens there, so those drafts can be judged differently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from specsteer import fusion
from specsteer._errors import ProtocolError
from specsteer.backends._base import ModelBackend

__all__ = [
    "Segment",
    "candidate_strings",
    "cloud_tokens",
    "scored_segments",
    "segments",
    "span_sums",
    "straddle",
]

T = TypeVar("T")

#: Tokens (by the cloud's rank) searched for the ones that spell the accepted characters of a
#: straddling token; the mass beyond them is left out.
STRADDLE_WIDTH = 128

#: The replacement character a decoder emits for an incomplete UTF-8 sequence.
PARTIAL = "\ufffd"


def _decode(backend: ModelBackend, ids: list[int]) -> str:
    return backend.decode(ids, skip_special_tokens=False)


def cloud_tokens(
    backend: ModelBackend, text: str, start: int
) -> tuple[list[int], int, dict[int, int]]:
    """The cloud's tokens of ``text`` and where they end.

    Args:
        start: the character offset where the draft begins.

    Returns:
        ``(ids, j0, ends)``: ``j0`` tokens lie wholly before ``start``, and ``ends[j]`` is the
        character offset where ``ids[:j]`` ends, for each ``j >= j0`` that ends on a clean
        boundary (not inside a character split over byte tokens). Spans come from the
        tokenizer's offset mapping, so text the tokenizer cannot spell (an unknown word) still
        aligns; without one, from decoding.
    """
    found = backend.encode_offsets(text)
    if found is None:
        ids = backend.encode(text)
        return (ids, *_ends_by_decoding(backend, ids, text, start))
    ids, spans = found
    ends: dict[int, int] = {0: 0}
    j0 = 0
    for j in range(1, len(ids) + 1):
        end = spans[j - 1][1]
        if j < len(ids) and spans[j][0] < end:
            continue  # the next token shares this character: not a boundary
        ends[j] = end
        if end <= start:
            j0 = j
    return ids, j0, {j: e for j, e in ends.items() if j >= j0}


def _ends_by_decoding(
    backend: ModelBackend, ids: list[int], text: str, start: int
) -> tuple[int, dict[int, int]]:
    # Binary search for the last j whose decoded text fits before `start`.
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(_decode(backend, ids[:mid])) <= start:
            lo = mid
        else:
            hi = mid - 1
    j0 = lo
    while j0 > 0 and not text.startswith(_decode(backend, ids[:j0])):
        j0 -= 1
    ends: dict[int, int] = {j0: len(_decode(backend, ids[:j0]))}
    for j in range(j0 + 1, len(ids) + 1):
        piece = _decode(backend, ids[:j])
        if text.startswith(piece) and not piece.endswith(PARTIAL):
            ends[j] = len(piece)
    return j0, ends


@dataclass(frozen=True)
class Segment:
    """Draft units ``[unit_lo, unit_hi)`` scored by cloud tokens ``[tok_lo, tok_hi)`` of the block."""

    unit_lo: int
    unit_hi: int
    tok_lo: int
    tok_hi: int
    end: int  # character offset in prefix + draft


def segments(unit_ends: list[int], j0: int, ends: dict[int, int]) -> list[Segment]:
    """Cut the draft at offsets that end both a device unit and a cloud token.

    Args:
        unit_ends: character offset (in prefix + draft) where each draft unit ends.
        j0: cloud tokens before the draft (see :func:`cloud_tokens`).
        ends: clean cloud token ends (see :func:`cloud_tokens`).
    """
    # The last j reaching an offset wins: a zero-width token joins the segment before it.
    by_end = {e: j for j, e in sorted(ends.items())}
    out: list[Segment] = []
    unit_lo, tok_lo = 0, 0
    for i, e in enumerate(unit_ends):
        j = by_end.get(e)
        if j is None or j - j0 <= tok_lo:
            continue
        out.append(Segment(unit_lo, i + 1, tok_lo, j - j0, e))
        unit_lo, tok_lo = i + 1, j - j0
    return out


def span_sums(values: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """``[len(spans)]`` sums of ``values[lo:hi]`` (float64)."""
    if not spans:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack([values[lo:hi].double().sum() for lo, hi in spans])


def candidate_strings(
    backend: ModelBackend,
    lp_row: torch.Tensor,
    context_ids: list[int],
    top_k: int,
) -> tuple[list[str], list[float]]:
    """The cloud's top-k next-token strings at one position, best first.

    Args:
        lp_row: ``[V]`` the cloud's log-probabilities at the position.
        context_ids: cloud tokens before the position (the tail decides spacing).
        top_k: how many candidates to return.

    Returns:
        ``(strings, logprobs)``: distinct, complete-character strings; ``""`` is the end of turn.
        Candidates of the same string are merged (their probabilities add).
    """
    eos = backend.eos_token_ids
    tail = context_ids[-4:]
    base = _decode(backend, tail)
    width = min(lp_row.shape[-1], 2 * top_k + 16)
    values, ids = torch.topk(lp_row, width)
    merged: dict[str, float] = {}
    for v, i in zip(values.tolist(), ids.tolist(), strict=True):
        if not math.isfinite(v):
            continue
        if i in eos:
            s: str | None = ""
        else:
            full = _decode(backend, [*tail, i])
            s = full[len(base) :] if full.startswith(base) else None
            if not s or PARTIAL in s:
                s = None
        if s is None:
            continue
        if s in merged:
            merged[s] = float(torch.logaddexp(torch.tensor(merged[s]), torch.tensor(v)))
        elif len(merged) < top_k:
            merged[s] = v
    if not merged:
        raise ProtocolError("the cloud model has no complete-text candidate at this position")
    ranked = sorted(merged.items(), key=lambda kv: -kv[1])
    return [s for s, _ in ranked], [min(0.0, v) for _, v in ranked]


def straddle(
    backend: ModelBackend,
    lp_row: torch.Tensor,
    context_ids: list[int],
    token: int,
    accepted: str,
) -> tuple[float, bool]:
    """A token that straddles the start of the draft, conditioned on its accepted characters.

    ``P_L(" Lena")`` after ``"Dear"`` is the probability of ``" Len"`` (already accepted) and
    ``"a"`` (drafted) together; the draft's share is ``P_L(" Lena") / P_L(text starts " Len")``,
    the denominator summed over the tokens whose text starts with the accepted characters (among
    the :data:`STRADDLE_WIDTH` most likely and ``token`` itself; paths of several shorter tokens
    are not counted).

    Args:
        lp_row: ``[V]`` the cloud's log-probabilities at the straddling token's position.
        context_ids: cloud tokens before it (the tail decides spacing).
        token: the straddling token.
        accepted: its characters before the draft's start.

    Returns:
        ``(log P_L(token | accepted), whether token is the most likely of those tokens)``.
    """
    own = float(lp_row[token])
    if not math.isfinite(own):
        return own, False
    tail = context_ids[-4:]
    base = _decode(backend, tail)
    values, ids = torch.topk(lp_row, min(lp_row.shape[-1], STRADDLE_WIDTH))
    spelled = {token: own}
    for v, i in zip(values.tolist(), ids.tolist(), strict=True):
        if i in spelled or not math.isfinite(v):
            continue
        full = _decode(backend, [*tail, i])
        if full.startswith(base) and full[len(base) :].startswith(accepted):
            spelled[i] = v
    mass = float(torch.logsumexp(torch.tensor(list(spelled.values()), dtype=torch.float64), 0))
    return min(0.0, own - mass), own >= max(spelled.values())


def scored_segments(
    segs: list[Segment],
    lp_tok: torch.Tensor,
    argmax_matches: list[bool],
    top_k: Callable[[int], T],
) -> fusion.Scored[T]:
    """The draft's segments in the judge's shape (:class:`specsteer.fusion.Scored`).

    Args:
        segs: the draft's segments (see :func:`segments`).
        lp_tok: ``[T]`` log P_L of each cloud token of the block.
        argmax_matches: ``[T]`` whether each cloud token of the block is the cloud's argmax
            (a segment matches when all of its tokens do).
        top_k: the candidates at the start of segment ``i`` (``i = len(segs)``: after the last).
    """
    return fusion.Scored(
        lp_llm=span_sums(lp_tok, [(s.tok_lo, s.tok_hi) for s in segs]),
        is_argmax=torch.tensor(
            [all(argmax_matches[s.tok_lo : s.tok_hi]) for s in segs], dtype=torch.bool
        ),
        top_k=top_k,
        units=tuple(s.unit_hi - s.unit_lo for s in segs),
    )
