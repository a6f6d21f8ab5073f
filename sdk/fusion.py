"""The fusion math of SpecSteer, as pure functions of tensors (DESIGN section 3).

Notation at a decoding position t:

* ``h_S``  -- device model logits given (x, c, y<t): private, never leaves the device;
* ``h_S0`` -- device model logits given (x, y<t): the same model without the private context;
* ``h_L``  -- cloud model logits given (x, y<t).

The fused target is ``log pi(y) = log P_L(y) + beta * (log P_S(y) - log P_S0(y)) - log Z``.
Drafts come from ``P_S``; the cloud accepts draft token ``d`` iff
``u <= min(1, P_L(d) / (lam * P_S0(d)))`` (greedy: iff ``P_L(d) >= lam * P_S0(d)``), a test in
which the private term cancels; at the first rejection the device recovers from
``softmax_S(h_L + beta * (h_S - h_S0))`` over the cloud's top-k support ``S``.

Every distribution here is ``log_softmax(logits / temperature)``, so temperature scales the final
logits the same way everywhere. No I/O, no global randomness: generators are passed in. This
module imports nothing from the package but its exceptions, so the device engine and the cloud
server share it.

Every verifier -- in process, the reference server, the vLLM adapter; token ids or text -- hands
the cloud's scores of a draft to :func:`judge` in one shape (:class:`Scored`), so the verdict is
computed in one place.

Extreme values have one meaning everywhere: ``-inf`` is probability 0 (a candidate with it is
never chosen while one with a finite score exists, and a draft item the cloud gives probability 0
is never accepted); a temperature too small to divide by is its limit, the argmax; NaN, or a
choice among candidates that are all ruled out, raises :class:`DegenerateScoresError`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from specsteer._errors import DegenerateScoresError, InvalidInputError

__all__ = [
    "Processing",
    "Scored",
    "Verdict",
    "acceptance_probs",
    "draft_token",
    "draw_samples",
    "fused_scores",
    "judge",
    "log_probs",
    "processed_log_probs",
    "ratio_test",
    "recover",
    "recover_index",
    "recover_residual",
    "recover_residual_index",
    "residual_from_samples",
    "sample_or_argmax",
    "top_p_filter",
    "uses_argmax",
    "verify_draft",
    "verify_draft_exact",
]


T = TypeVar("T")

#: Below this temperature the distribution is its limit, the argmax (dividing by it overflows).
MIN_TEMPERATURE = 1e-30


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities ``log_softmax(logits / temperature)`` in float32.

    The maximum is subtracted before dividing, so a tiny temperature sends every other entry to
    ``-inf`` (its limit) instead of overflowing to NaN; below :data:`MIN_TEMPERATURE` the result
    is the limit itself, the argmax (ties share its mass). A row with no finite entry stays all
    ``-inf`` (nothing to choose; the choice functions say so).

    Args:
        logits: ``[..., vocab]`` raw logits.
        temperature: > 0.
    """
    _check_temperature(temperature)
    return _log_probs(logits.float(), temperature, owned=False)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise InvalidInputError("temperature must be > 0; use greedy decoding for its limit")


def _log_probs(x: torch.Tensor, temperature: float, *, owned: bool) -> torch.Tensor:
    """:func:`log_probs` of float32 ``x``, which it may overwrite when ``owned``. A row of
    151,936 entries is 0.6 MB: every pass over it costs, so work is done in place where it can
    be and the empty-row fix-ups only when a row is empty."""
    top = x.amax(dim=-1, keepdim=True)  # [..., 1]
    empty = torch.isneginf(top)
    any_empty = bool(empty.any())
    if temperature < MIN_TEMPERATURE:
        best = x == top
        share = -torch.log(best.sum(dim=-1, keepdim=True).float())
        out = torch.where(best, share, torch.full_like(x, -torch.inf))
    else:
        shift = torch.where(empty, torch.zeros_like(top), top) if any_empty else top
        y = x.sub_(shift) if owned else x - shift
        out = torch.log_softmax(y if temperature == 1.0 else y.div_(temperature), dim=-1)
    return out.masked_fill_(empty, -torch.inf) if any_empty else out


@dataclass(frozen=True)
class Processing:
    """How raw logits become the distributions every formula here uses.

    The same processing turns ``h_S``, ``h_S0`` and ``h_L`` into ``P_S``, ``P_S0`` and ``P_L``,
    each over its own model's tokens of the answer so far, so the ratio test and the steered
    recovery keep their formulas over the processed distributions. Only the answer counts as
    history, never the prompt: the private context sits in the prompt of ``h_S`` alone, so
    penalizing prompt tokens would make ``P_S`` and ``P_S0`` differ by more than the context's
    own signal (and would push the answer away from the user's facts).

    Attributes:
        temperature: > 0; logits are divided by it last.
        repetition_penalty: >= 1; a token already in the answer has its logit divided by it
            when positive and multiplied by it when negative (the CTRL penalty, as
            transformers' ``RepetitionPenaltyLogitsProcessor``); 1 switches it off.
        no_repeat_ngram_size: n > 0 rules out any token that would repeat an n-gram of the
            answer (as transformers' ``NoRepeatNGramLogitsProcessor``); 0 switches it off.
    """

    temperature: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    @property
    def penalizes(self) -> bool:
        """Whether the answer's history changes the distributions at all."""
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram_size > 0


def _banned_ngram_tokens(history: Sequence[int], n: int) -> list[int]:
    """Tokens that would complete an n-gram already present in ``history``."""
    if n <= 0 or len(history) < n:
        return []
    if n == 1:
        return sorted(set(history))
    tail = tuple(history[len(history) - n + 1 :])
    return sorted(
        {
            history[j + n - 1]
            for j in range(len(history) - n + 1)
            if tuple(history[j : j + n - 1]) == tail
        }
    )


def _penalize_(row: torch.Tensor, history: Sequence[int], proc: Processing) -> None:
    """Apply the repetition penalty and the n-gram ban over ``history`` to ``[V]`` ``row``, in
    place."""
    vocab = row.shape[-1]
    if proc.repetition_penalty != 1.0 and history:
        seen = torch.tensor(sorted({t for t in history if 0 <= t < vocab}), dtype=torch.long)
        if seen.numel():
            vals = row[seen]
            penalty = proc.repetition_penalty
            row[seen] = torch.where(vals > 0, vals / penalty, vals * penalty)
    banned = [t for t in _banned_ngram_tokens(history, proc.no_repeat_ngram_size) if t < vocab]
    if banned:
        row[torch.tensor(banned, dtype=torch.long)] = -torch.inf


def processed_log_probs(
    logits: torch.Tensor,
    answer: Sequence[int],
    proc: Processing,
    block: Sequence[int] = (),
) -> torch.Tensor:
    """Processed log-probabilities of one position or of a scored block.

    Args:
        logits: ``[V]`` raw logits after ``answer``, or ``[n, V]`` rows where row ``i`` follows
            ``answer + block[:i]`` (a block pass; ``n <= len(block) + 1``).
        answer: the model's own tokens of the answer so far (never the prompt).
        proc: the processing.
        block: the tokens scored on top of ``answer`` (rows after the first).

    Returns:
        ``log_softmax(process(logits) / temperature)``, the same shape as ``logits``.
    """
    if not proc.penalizes:
        return log_probs(logits, proc.temperature)
    _check_temperature(proc.temperature)
    rows = logits.float().clone()  # processed in place
    if rows.dim() == 1:
        _penalize_(rows, answer, proc)
    else:
        assert rows.dim() == 2 and rows.shape[0] <= len(block) + 1, "rows must follow the block"
        history = [*answer, *block]
        for i in range(rows.shape[0]):
            _penalize_(rows[i], history[: len(answer) + i], proc)
    return _log_probs(rows, proc.temperature, owned=True)


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """``[n]`` scores with everything outside the nucleus set to ``-inf``.

    The nucleus is the smallest set of highest-scoring entries whose probability under
    ``softmax(scores)`` reaches ``top_p`` (the top entry is always kept).
    """
    assert scores.dim() == 1, "scores must be [n]"
    if top_p >= 1.0:
        return scores
    if not top_p > 0.0:
        raise ValueError("top_p must be in (0, 1]")
    order = torch.argsort(scores, descending=True)
    probs = torch.softmax(scores.double()[order], dim=-1)
    before = torch.cumsum(probs, dim=-1) - probs  # mass strictly above each entry
    cut = order[before >= top_p]
    out = scores.clone()
    out[cut] = -torch.inf
    return out


def _choosable(scores: torch.Tensor, what: str) -> None:
    """Raise unless ``scores`` (``[n]``) can be chosen from: no NaN or ``+inf``, one finite."""
    if bool(torch.isnan(scores).any()) or bool(torch.isposinf(scores).any()):
        raise DegenerateScoresError(
            f"the {what} hold NaN or +inf, so no token can be chosen: the model's scores are "
            "broken (check its weights and dtype)"
        )
    if not bool(torch.isfinite(scores).any()):
        raise DegenerateScoresError(
            f"every one of the {what} is ruled out (-inf): nothing is left to choose; a "
            "no_repeat_ngram_size this small bans every token, so raise it (or switch it off "
            "with 0), or ask for a shorter answer"
        )


def sample_or_argmax(
    scores: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None = None,
    top_p: float = 1.0,
) -> int:
    """Index of the maximum (greedy) or a draw from ``softmax(scores)`` within the nucleus.

    Args:
        scores: ``[n]`` unnormalized log-weights; ``-inf`` entries are never chosen.
        top_p: nucleus size for draws (1 keeps every entry); no effect in greedy mode.

    Raises:
        DegenerateScoresError: ``scores`` hold NaN or ``+inf``, or no finite entry.
    """
    assert scores.dim() == 1, f"scores must be [n], got {tuple(scores.shape)}"
    _choosable(scores, "scores")
    if greedy:
        return int(torch.argmax(scores).item())
    probs = torch.softmax(top_p_filter(scores, top_p).double(), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def draft_token(
    lp_private: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None,
    top_p: float = 1.0,
) -> int:
    """Draw one draft token ``d ~ P_S`` (argmax in greedy mode), within the nucleus ``top_p``.

    Args:
        lp_private: ``[vocab]`` log P_S at the position being drafted.
    """
    assert lp_private.dim() == 1, "lp_private must be [vocab]"
    return sample_or_argmax(lp_private, greedy, generator, top_p)


def _log_ratios(lp_llm: torch.Tensor, lp_ctxfree: torch.Tensor, lam: float) -> torch.Tensor:
    """``[K]`` float64 ``log(P_L(d_i) / (lam * P_S0(d_i)))``; ``-inf`` wherever ``P_L(d_i) = 0``.

    A draft item the cloud gives probability 0 has no mass under the fused target, whatever
    ``P_S0`` says (``-inf - -inf`` would otherwise be NaN); ``P_S0(d_i) = 0`` with ``P_L(d_i) > 0``
    is a ratio of ``+inf``.
    """
    assert lp_llm.shape == lp_ctxfree.shape and lp_llm.dim() == 1, "expected two [K] tensors"
    for name, lp in (("P_L", lp_llm), ("P_S0", lp_ctxfree)):
        if bool(torch.isnan(lp).any()) or bool(torch.isposinf(lp).any()):
            raise DegenerateScoresError(
                f"log {name} of a draft item is NaN or +inf: the scores are broken (check the "
                "model's weights and dtype)"
            )
    llm, ctxfree = lp_llm.double(), lp_ctxfree.double()
    # a - (b + c), not a - b - c: its sign is exactly that of the test a >= b + c, so a ratio
    # of exactly 1 passes in both modes.
    ratio = llm - (ctxfree + math.log(lam))
    return torch.where(torch.isneginf(llm), torch.full_like(ratio, -torch.inf), ratio)


def acceptance_probs(lp_llm: torch.Tensor, lp_ctxfree: torch.Tensor, lam: float) -> torch.Tensor:
    """Per-token acceptance probabilities ``min(1, P_L(d_i) / (lam * P_S0(d_i)))``.

    Args:
        lp_llm: ``[K]`` log P_L of each draft token.
        lp_ctxfree: ``[K]`` log P_S0 of each draft token.
        lam: threshold >= 0; 0 accepts everything, ``inf`` rejects everything.

    Raises:
        DegenerateScoresError: a log-probability is NaN or ``+inf``.
    """
    assert lp_llm.shape == lp_ctxfree.shape and lp_llm.dim() == 1, "expected two [K] tensors"
    if lam < 0 or math.isnan(lam):
        raise InvalidInputError("lam must be >= 0")
    if lam == 0:
        return torch.ones_like(lp_llm, dtype=torch.float64)
    if math.isinf(lam):
        return torch.zeros_like(lp_llm, dtype=torch.float64)
    return torch.exp(torch.clamp(_log_ratios(lp_llm, lp_ctxfree, lam), max=0.0))


def verify_draft(
    lp_llm: torch.Tensor,
    lp_ctxfree: torch.Tensor,
    lam: float,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """The SpecSteer ratio test: number of draft tokens accepted before the first rejection.

    Greedy: accept ``d_i`` iff ``P_L(d_i) >= lam * P_S0(d_i)``. Stochastic: iff
    ``u_i < min(1, P_L(d_i) / (lam * P_S0(d_i)))`` with ``u_i ~ U[0, 1)`` drawn from
    ``generator``. Standard speculative decoding is the case ``lam = 1`` with a context-free
    drafter. Both modes read one log-ratio, so they agree wherever the outcome is certain: a
    ratio of at least 1 is accepted by both, an item with ``P_L(d_i) = 0`` rejected by both.

    Args:
        lp_llm: ``[K]`` log P_L(d_i).
        lp_ctxfree: ``[K]`` log P_S0(d_i).

    Raises:
        DegenerateScoresError: a log-probability is NaN or ``+inf``.
    """
    k = lp_llm.shape[0]
    if k == 0:
        return 0
    if lam < 0 or math.isnan(lam):
        raise InvalidInputError("lam must be >= 0")
    if greedy:
        if lam == 0:
            return k
        if math.isinf(lam):
            return 0
        ok = _log_ratios(lp_llm, lp_ctxfree, lam) >= 0
    else:
        accept = acceptance_probs(lp_llm, lp_ctxfree, lam)
        u = torch.rand(k, generator=generator, dtype=torch.float64)
        ok = u < accept
    rejected = torch.nonzero(~ok)
    return int(rejected[0].item()) if rejected.numel() else k


def verify_draft_exact(draft: torch.Tensor, llm_logits: torch.Tensor) -> int:
    """Greedy standard speculative decoding: accept ``d_i`` iff it is the target's argmax.

    Args:
        draft: ``[K]`` draft token ids.
        llm_logits: ``[K, vocab]`` target logits at each draft position.
    """
    assert draft.dim() == 1 and llm_logits.dim() == 2 and llm_logits.shape[0] == draft.shape[0]
    ok = torch.argmax(llm_logits, dim=-1) == draft
    rejected = torch.nonzero(~ok)
    return int(rejected[0].item()) if rejected.numel() else int(draft.shape[0])


def uses_argmax(target: str, greedy: bool) -> bool:
    """Whether :func:`ratio_test` decides by the cloud's argmax instead of by ``P_S0``.

    Greedy standard speculative decoding (``target='llm'``) accepts a draft token iff it is the
    cloud's own choice; it needs no ``P_S0``, so a verifier may skip computing it.
    """
    return target == "llm" and greedy


def ratio_test(
    lp_llm: torch.Tensor,
    lp_ctxfree: torch.Tensor | None,
    *,
    lam: float,
    greedy: bool,
    target: str = "fused",
    argmax_matches: torch.Tensor | None = None,
    units: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """The decision inside :func:`judge`: draft items accepted before the first rejection.

    * ``target='fused'`` (SpecSteer): :func:`verify_draft` at ``lam``;
    * ``target='llm'``, sampled (standard speculative decoding): :func:`verify_draft` at
      ``lam = 1``;
    * ``target='llm'``, greedy: accept while the draft is the cloud's argmax
      (``argmax_matches``); see :func:`uses_argmax`.

    Args:
        lp_llm: ``[K]`` log P_L of each draft item.
        lp_ctxfree: ``[K]`` log P_S0 of each draft item; unused (may be ``None``) when
            :func:`uses_argmax`.
        lam: acceptance threshold of the fused target.
        greedy: deterministic acceptance.
        target: ``'fused'`` or ``'llm'``.
        argmax_matches: ``[K]`` bool, item ``i`` is the cloud's argmax of the distribution the
            recovery uses (the processed one); needed when :func:`uses_argmax`.
        units: ``[K]`` draft units per item (cross-vocabulary segments, whose scores are sums
            over their units): an item of ``n`` units is tested against ``lam ** n * P_S0``,
            ``lam`` once per unit. ``None``: one unit each.
        generator: source of the ``u_i`` draws.
    """
    if target not in ("fused", "llm"):
        raise InvalidInputError(f"target must be 'fused' or 'llm', not {target!r}")
    k = lp_llm.shape[0]
    if k == 0:  # an empty draft (token-level fusion): nothing to accept
        return 0
    if uses_argmax(target, greedy):
        assert argmax_matches is not None and argmax_matches.shape == (k,), "need [K] matches"
        rejected = torch.nonzero(~argmax_matches.bool())
        return int(rejected[0].item()) if rejected.numel() else k
    assert lp_ctxfree is not None and lp_ctxfree.shape == (k,), "need [K] log P_S0"
    lam = 1.0 if target == "llm" else lam
    lp_ctxfree = lp_ctxfree.double()
    if units is not None and lam > 0 and math.isfinite(lam):
        extra = torch.tensor([n - 1 for n in units], dtype=torch.float64)  # [K]
        lp_ctxfree = lp_ctxfree + extra * math.log(lam)
    return verify_draft(lp_llm.double(), lp_ctxfree, lam, greedy, generator)


@dataclass(frozen=True)
class Scored(Generic[T]):
    """The cloud's scores of a draft of ``K`` items: the one shape every verifier judges.

    An item is a draft token (token-id mode) or a segment of draft units cut at a boundary both
    tokenizers share (cross-vocabulary mode).

    Attributes:
        lp_llm: ``[K]`` log P_L of each item, processed as the recovery's distribution is (a
            segment: the sum over its cloud tokens).
        is_argmax: ``[K]`` bool, each item is the cloud's argmax of that same distribution (a
            segment: each of its cloud tokens is).
        top_k: the cloud's top-k at the start of item ``i`` (``i = K``: after the whole draft,
            the bonus position). Called once, for the position the verdict names, so a verifier
            builds only the candidates it sends.
        units: ``[K]`` draft units in each item (segments); ``None``: one each.
    """

    lp_llm: torch.Tensor
    is_argmax: torch.Tensor
    top_k: Callable[[int], T]
    units: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Verdict(Generic[T]):
    """What :func:`judge` decided: items accepted, and the candidates where the first failed."""

    n_accepted: int
    top_k: T


def judge(
    scored: Scored[T],
    lp_ctxfree: torch.Tensor | None,
    *,
    lam: float,
    greedy: bool,
    target: str = "fused",
    generator: torch.Generator | None = None,
) -> Verdict[T]:
    """The verify step's one verdict, whoever computes the cloud's scores.

    Accepts items while :func:`ratio_test` passes them and returns the cloud's top-k at the
    first item it rejects (after the draft when every item passed).

    Args:
        scored: the cloud's scores of the draft (:class:`Scored`).
        lp_ctxfree: ``[U]`` log P_S0 of each draft unit as the device sent them (``U`` at least
            the units the items cover; a text draft's unjudged tail is ignored); summed per
            item. Unused (may be ``None``) when :func:`uses_argmax`.
        lam: acceptance threshold of the fused target.
        greedy: deterministic acceptance.
        target: ``'fused'`` (SpecSteer) or ``'llm'`` (standard speculative decoding).
        generator: source of the ``u_i`` draws.
    """
    k = scored.lp_llm.shape[0]
    lp0 = None
    if lp_ctxfree is not None and not uses_argmax(target, greedy):
        sizes = scored.units or (1,) * k
        assert lp_ctxfree.dim() == 1 and lp_ctxfree.shape[0] >= sum(sizes), "need [U] P_S0"
        bounds = [0, *itertools.accumulate(sizes)]
        lp0 = (
            torch.stack([lp_ctxfree[lo:hi].double().sum() for lo, hi in itertools.pairwise(bounds)])
            if k
            else torch.zeros(0, dtype=torch.float64)
        )
    n = ratio_test(
        scored.lp_llm,
        lp0,
        lam=lam,
        greedy=greedy,
        target=target,
        argmax_matches=scored.is_argmax,
        units=scored.units,
        generator=generator,
    )
    return Verdict(n, scored.top_k(n))


def fused_scores(
    lp_llm_topk: torch.Tensor,
    lp_private_topk: torch.Tensor,
    lp_ctxfree_topk: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Unnormalized fused log-scores over the support: ``log P_L + beta * (log P_S - log P_S0)``.

    All three arguments are ``[k]``, aligned with the cloud's top-k support.
    """
    assert lp_llm_topk.shape == lp_private_topk.shape == lp_ctxfree_topk.shape
    assert lp_llm_topk.dim() == 1, "expected [k] tensors"
    lp_llm = lp_llm_topk.double()
    if beta == 0:
        return lp_llm.clone()
    private, ctxfree = lp_private_topk.double(), lp_ctxfree_topk.double()
    # A candidate that processing rules out on either side (-inf) is no candidate: without
    # this, -inf - -inf would be NaN and finite - -inf would be +inf.
    ruled_out = torch.isneginf(lp_llm) | torch.isneginf(private) | torch.isneginf(ctxfree)
    scores = lp_llm + beta * (private - ctxfree)
    return torch.where(ruled_out, torch.full_like(scores, -torch.inf), scores)


def _steered_choice(
    lp_llm_topk: torch.Tensor,
    scores: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None,
    top_p: float,
) -> int:
    """Draw from the fused scores; if the device rules out every candidate, from the cloud's."""
    if not bool(torch.isfinite(scores).any()):
        scores = lp_llm_topk.double()
    return sample_or_argmax(scores, greedy, generator, top_p)


def recover(
    topk_ids: torch.Tensor,
    lp_llm_topk: torch.Tensor,
    lp_private: torch.Tensor,
    lp_ctxfree: torch.Tensor,
    beta: float,
    greedy: bool,
    generator: torch.Generator | None = None,
    top_p: float = 1.0,
) -> int:
    """Steered recovery: a token from ``softmax_S(h_L + beta * (h_S - h_S0))``.

    Draws are restricted to the nucleus ``top_p`` of that distribution.

    Args:
        topk_ids: ``[k]`` the cloud's top-k token ids (the support ``S``).
        lp_llm_topk: ``[k]`` log P_L of those ids, as returned by the cloud.
        lp_private: ``[vocab]`` log P_S at the rejected position (private).
        lp_ctxfree: ``[vocab]`` log P_S0 at the same position.
        beta: steering strength.

    Returns:
        The chosen token id.
    """
    assert topk_ids.dim() == 1 and topk_ids.shape == lp_llm_topk.shape, "expected [k] tensors"
    assert lp_private.dim() == 1 and lp_private.shape == lp_ctxfree.shape, "expected [vocab]"
    ids = topk_ids.long()
    scores = fused_scores(lp_llm_topk, lp_private[ids], lp_ctxfree[ids], beta)
    return int(ids[_steered_choice(lp_llm_topk, scores, greedy, generator, top_p)].item())


def recover_index(
    lp_llm_topk: torch.Tensor,
    lp_private_topk: torch.Tensor,
    lp_ctxfree_topk: torch.Tensor,
    beta: float,
    greedy: bool,
    generator: torch.Generator | None = None,
    top_p: float = 1.0,
) -> int:
    """:func:`recover` over candidates given by their scores (cross-vocabulary mode, where the
    candidates are strings): returns the chosen candidate's index. All tensors ``[k]``."""
    assert lp_llm_topk.dim() == 1 and lp_llm_topk.shape == lp_private_topk.shape
    assert lp_private_topk.shape == lp_ctxfree_topk.shape, "expected [k] tensors"
    scores = fused_scores(lp_llm_topk, lp_private_topk, lp_ctxfree_topk, beta)
    return _steered_choice(lp_llm_topk, scores, greedy, generator, top_p)


def recover_residual(
    topk_ids: torch.Tensor,
    lp_llm_topk: torch.Tensor,
    lp_ctxfree: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """Standard speculative decoding's correction: ``norm(max(0, P_L - P_S0))`` over ``S``.

    Greedy mode takes the target's argmax. When the residual is empty on the support (the
    drafter dominates everywhere there) the target distribution on the support is used.

    Args:
        topk_ids: ``[k]`` the cloud's top-k ids.
        lp_llm_topk: ``[k]`` their log P_L.
        lp_ctxfree: ``[vocab]`` the drafter's log-probabilities at that position.
    """
    assert topk_ids.dim() == 1 and topk_ids.shape == lp_llm_topk.shape
    ids = topk_ids.long()
    return int(ids[recover_residual_index(lp_llm_topk, lp_ctxfree[ids], greedy, generator)].item())


def recover_residual_index(
    lp_llm_topk: torch.Tensor,
    lp_ctxfree_topk: torch.Tensor,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> int:
    """:func:`recover_residual` over candidates given by their scores; returns an index.

    The residual is computed relative to the best candidate, so log-probabilities far below
    ``exp``'s range (vLLM writes ``-inf`` as -9999) still weigh as they should.

    Raises:
        DegenerateScoresError: NaN scores, or every candidate at ``-inf``.
    """
    assert lp_llm_topk.dim() == 1 and lp_llm_topk.shape == lp_ctxfree_topk.shape
    _choosable(lp_llm_topk, "cloud's candidates")
    if bool(torch.isnan(lp_ctxfree_topk).any()):
        raise DegenerateScoresError(
            "the drafter's log-probabilities of the candidates are NaN: its scores are broken"
        )
    if greedy:
        return int(torch.argmax(lp_llm_topk).item())
    top = lp_llm_topk.double().max()
    target = torch.exp(lp_llm_topk.double() - top)  # [k], its maximum is 1
    residual = torch.clamp(target - torch.exp(lp_ctxfree_topk.double() - top), min=0.0)
    weights = residual if float(residual.sum()) > 0 else target
    choice = torch.multinomial(weights / weights.sum(), 1, generator=generator)
    return int(choice.item())


def draw_samples(
    lp_row: torch.Tensor, m: int, generator: torch.Generator | None = None
) -> tuple[list[int], list[float]]:
    """``m`` independent draws from ``softmax(lp_row)`` and their log-probabilities.

    The cloud sends them beside its top-k so the device can sample standard speculative
    decoding's correction ``norm(max(0, P_L - P_S0))`` from the whole distribution, not its
    top-k (:func:`residual_from_samples`).

    Args:
        lp_row: ``[V]`` log-probabilities (``-inf`` entries are never drawn).
        m: how many draws.

    Raises:
        DegenerateScoresError: no finite entry to draw.
    """
    assert lp_row.dim() == 1, "lp_row must be [V]"
    if not bool(torch.isfinite(lp_row).any()):
        raise DegenerateScoresError("every token is ruled out at this position; nothing to draw")
    probs = torch.softmax(lp_row.double(), dim=-1)
    ids = torch.multinomial(probs, m, replacement=True, generator=generator)
    return ids.tolist(), [min(0.0, float(lp_row[i])) for i in ids.tolist()]


def residual_from_samples(
    sample_ids: Sequence[int],
    lp_llm_samples: torch.Tensor,
    lp_ctxfree_samples: torch.Tensor,
    generator: torch.Generator | None = None,
) -> int | None:
    """A draw from ``norm(max(0, P_L - P_S0))`` by rejection from draws of ``P_L``.

    Draw ``y`` of ``P_L`` is kept with probability ``max(0, 1 - P_S0(y) / P_L(y))``; the first
    kept one is distributed exactly as the residual over the whole vocabulary.

    Args:
        sample_ids: ``[m]`` the draws, in order.
        lp_llm_samples: ``[m]`` their log P_L.
        lp_ctxfree_samples: ``[m]`` their log P_S0.

    Returns:
        The index of the first kept draw, or ``None`` when none was kept (ask for more draws:
        exactness needs them).
    """
    assert lp_llm_samples.shape == lp_ctxfree_samples.shape == (len(sample_ids),)
    ratio = torch.exp(lp_ctxfree_samples.double() - lp_llm_samples.double())  # [m]
    keep = torch.clamp(1.0 - ratio, min=0.0)
    u = torch.rand(len(sample_ids), generator=generator, dtype=torch.float64)
    kept = torch.nonzero(u < keep)
    return int(kept[0].item()) if kept.numel() else None
