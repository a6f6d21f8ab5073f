"""Cross-vocabulary (text) requests over vLLM's ``/v1/completions``.

The device and the served model have different tokenizers, so the adapter sends text: the public
chat rendered with the served model's chat template (by the tokenizer the adapter holds), then the
accepted text and the draft, with ``add_special_tokens: false`` so the server adds nothing, and
``echo`` + ``prompt_logprobs`` + ``return_tokens_as_token_ids`` so every prompt token comes back
as an id with its log-probability and the top-N at its position. The adapter tokenizes the same
text with the same tokenizer to find token boundaries (:func:`_text.cloud_tokens`), checks that
the server's echoed ids are those tokens, and then lays the draft out exactly as the reference
core does (:mod:`._text`: segments, summed log-probabilities, a straddling first token
conditioned on its accepted characters) for the one judge, :func:`specsteer.fusion.judge`.

Approximate where the reference core can run a second forward pass:

* the end of the answer (a draft ending with ``eos``): the served model's first end token is
  appended to the text; ``P_L(end)`` sums that token and any other end token in the returned
  top-N (the core sums over every end token);
* the prompt is tokenized as one text (chat, accepted text, draft), where the core tokenizes the
  chat apart: a token spanning the chat's end and the answer's start would differ (chat templates
  end with a special token or a newline, so this is rare).

An accepted text that ends inside one of the served model's tokens is handled as the core does:
the request then carries a second prompt, the accepted text alone (vLLM answers a batch of
prompts with one choice each), whose next-token top-N are the candidates if the first segment is
rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from specsteer import fusion
from specsteer._errors import ProtocolError
from specsteer.backends._base import ModelBackend
from specsteer.cloud_adapter import _text
from specsteer.cloud_adapter._vllm import Choice, parse_entry, parse_top, ranked
from specsteer.cloud_adapter.protocol import Text, TopK, VerifyRequest

__all__ = ["Layout", "layout", "prompts", "scored"]


def prompts(tokenizer: ModelBackend, request: VerifyRequest) -> str | list[str]:
    """The text the server reads: the rendered chat, the accepted text, the draft (and the end
    token's text when the draft ends the answer). When the accepted text ends inside one of the
    served model's tokens of that text, a second prompt of the accepted text alone (in the same
    request) gives the candidates should the first segment be rejected."""
    assert isinstance(request.prefix, Text) and isinstance(request.draft, Text)
    chat = tokenizer.decode(
        tokenizer.encode_chat([m.model_dump() for m in request.prompt]), skip_special_tokens=False
    )
    full = chat + request.prefix.text + request.draft.text + _end_text(tokenizer, request.draft)
    lay = layout(tokenizer, request, full)
    if lay.boundary < lay.start:
        return [full, chat + request.prefix.text]
    return full


def _end_text(tokenizer: ModelBackend, draft: Text) -> str:
    eos = sorted(tokenizer.eos_token_ids)
    return tokenizer.decode(eos[:1], skip_special_tokens=False) if draft.eos and eos else ""


@dataclass(frozen=True)
class Layout:
    """Where the draft lies among the served model's tokens of the sent text."""

    ids: list[int]  # every token of the sent text
    j0: int  # tokens wholly before the draft
    segs: list[_text.Segment]
    eos_seg: bool  # the end token is judged as the last unit
    start: int  # character offset of the draft
    boundary: int  # character offset where the first ``j0`` tokens end


def layout(tokenizer: ModelBackend, request: VerifyRequest, sent: str) -> Layout:
    """Token boundaries of ``sent`` (the body's prompt) against the draft's units."""
    assert isinstance(request.prefix, Text) and isinstance(request.draft, Text)
    draft = request.draft
    tail = _end_text(tokenizer, draft)
    text = sent[: len(sent) - len(tail)]
    start = len(text) - len(draft.text)
    ids, j0, ends = _text.cloud_tokens(tokenizer, text, start)
    segs = _text.segments([start + o for o in draft.offsets], j0, ends)
    n_units = len(draft.offsets)
    aligned = (segs and segs[-1].unit_hi == n_units and segs[-1].tok_hi == len(ids) - j0) or (
        n_units == 0 and j0 == len(ids)
    )
    eos_seg = bool(tail) and bool(aligned)
    if eos_seg:
        segs.append(
            _text.Segment(n_units, n_units + 1, len(ids) - j0, len(ids) - j0 + 1, len(text))
        )
    end_ids = sorted(tokenizer.eos_token_ids)[:1] if tail else []
    return Layout([*ids, *end_ids], j0, segs, eos_seg, start, ends[j0])


def scored(
    tokenizer: ModelBackend,
    request: VerifyRequest,
    choices: list[Choice],
    lay: Layout,
    sent: list[str],
    n_top: int,
) -> fusion.Scored[TopK]:
    """The returned log-probabilities of the draft's segments, in the judge's shape."""
    if len(choices) != len(sent):
        raise ProtocolError(f"expected {len(sent)} choices, got {len(choices)}")
    choice = choices[0]
    _check_echo(choice, lay.ids)
    plp = choice.prompt_logprobs or []
    eos = tokenizer.eos_token_ids
    n_block = lay.segs[-1].tok_hi if lay.segs else 0
    block = lay.ids[lay.j0 : lay.j0 + n_block]
    entries = [parse_entry(plp[lay.j0 + t], f"draft token {t}") for t in range(n_block)]
    lp_tok = torch.tensor(
        [_own(e, tok, t) for t, (e, tok) in enumerate(zip(entries, block, strict=True))],
        dtype=torch.float64,
    )
    if lay.eos_seg:  # P_L(end): every end token the server returned counts
        last = entries[-1]
        lp_tok[-1] = math.log(sum(math.exp(v) for k, v in last.items() if k in eos))
    matches = [
        (top := ranked(e, 1)[0][0]) == tok or (top in eos and tok in eos)
        for e, tok in zip(entries, block, strict=True)
    ]
    if entries and lay.boundary < lay.start:  # the first token straddles the draft's start
        row = _as_row(entries[0], tokenizer.vocab_size)
        accepted = sent[0][lay.boundary : lay.start]
        lp_tok[0], matches[0] = _text.straddle(
            tokenizer, row, lay.ids[: lay.j0], block[0], accepted
        )

    def candidates(n_seg: int) -> TopK:
        return _candidates(tokenizer, request, choices, lay, sent, n_top, n_seg)

    return _text.scored_segments(lay.segs, lp_tok, matches, candidates)


def _candidates(
    tokenizer: ModelBackend,
    request: VerifyRequest,
    choices: list[Choice],
    lay: Layout,
    sent: list[str],
    n_top: int,
    n_seg: int,
) -> TopK:
    """The candidate strings at the start of segment ``n_seg``."""
    choice = choices[0]
    at = lay.j0 + (lay.segs[n_seg - 1].tok_hi if n_seg else 0)
    context, n_prompt = lay.ids[:at], len(lay.ids)
    if not n_seg and len(sent) == 2:
        # The accepted text ends inside a token: read the candidates after it alone.
        context = tokenizer.encode(sent[1])
        choice, at = choices[1], len(context)
        n_prompt = at
        _check_echo(choice, context)
    row = _row(choice, choice.prompt_logprobs or [], at, n_prompt, n_top, tokenizer.vocab_size)
    strings, logprobs = _text.candidate_strings(tokenizer, row, context, request.params.top_k)
    return TopK(strings=strings, logprobs=logprobs)


def _own(entry: dict[int, float], tok: int, t: int) -> float:
    if tok not in entry:
        raise ProtocolError(
            f"the server returned no log-probability for token {t} of the draft; it must return "
            "each prompt token's own logprob (vLLM does)"
        )
    return entry[tok]


def _check_echo(choice: Choice, ids: list[int]) -> None:
    """The server's tokens of the text must be the adapter's: else boundaries are wrong."""
    tokens = choice.logprobs.tokens if choice.logprobs is not None else None
    want = [f"token_id:{i}" for i in ids]
    if tokens is None or tokens[: len(ids)] != want:
        raise ProtocolError(
            "the server tokenized the text differently from the adapter's tokenizer; pass the "
            "served model's tokenizer as tokenizer=... (and a server with "
            "return_tokens_as_token_ids, as vLLM has)"
        )
    plp = choice.prompt_logprobs
    if plp is None or len(plp) != len(ids):
        raise ProtocolError(f"prompt_logprobs must hold one entry per prompt token ({len(ids)})")


def _as_row(support: dict[int, float], vocab: int) -> torch.Tensor:
    """``[V]`` the returned log-probabilities, ``-inf`` for the tokens not returned."""
    if any(i >= vocab for i in support):
        raise ProtocolError(f"a returned token id is outside the vocabulary ({vocab})")
    row = torch.full((vocab,), -math.inf)
    row[torch.tensor(list(support), dtype=torch.long)] = torch.tensor(
        list(support.values()), dtype=torch.float32
    )
    return row


def _row(
    choice: Choice, plp: list[Any], at: int, n_prompt: int, n_top: int, vocab: int
) -> torch.Tensor:
    """``[V]`` the returned top-N at token position ``at`` (-inf elsewhere)."""
    if at < n_prompt:
        support = parse_entry(plp[at], f"position {at}")
    else:
        tops = choice.logprobs.top_logprobs if choice.logprobs is not None else None
        if not tops or len(tops) <= n_prompt:
            raise ProtocolError("the response carries no top log-probabilities after the draft")
        support = parse_top(tops[n_prompt], "the position after the draft")
    ids, lps = ranked(support, n_top)
    return _as_row(dict(zip(ids, lps, strict=True)), vocab)
