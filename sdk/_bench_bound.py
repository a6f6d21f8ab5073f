"""The analytical speed bound each benchmark row is compared with (docs/benchmarks.md derives it).

A round drafts ``k`` tokens on the device at ``t_d`` each and scores them without the private
context in one block of ``k + 1`` (``s(k + 1)``); the cloud verifies the block in one pass
(``V(k + 1)``) after a round trip ``r``. With each draft token accepted with probability
``alpha``, independently (Leviathan et al., 2023), a round yields
``E(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha)`` tokens: the accepted prefix and the device's
token after it. The device drafts the next round while the cloud verifies this one, on a guess
of the token after this draft, which pays off when this round passes whole (probability
``alpha^k``) and the guess holds (probability ``h``, measured); then the device also passes over
the last draft token (the row the token after it comes from) and the round costs the longer of
the two sides, else their sum:

    D = k t_d + s(k + 1),  C = V(k + 1) + r,
    T = alpha^k [h max(D + t_d, C) + (1 - h) (D + t_d + C)] + (1 - alpha^k) (D + C),
    (a draft judged on the device leaves before its scoring, so there ``D + C`` becomes
    ``k t_d + max(s(k + 1), C)``)
    tokens/s <= sum_i E(alpha, k_i) / sum_i T(k_i)     over the rounds' draft lengths k_i.

Pass costs come from :class:`PassCosts`: milliseconds for a pass of ``n`` tokens on top of a
cached prompt, timed through the seam in the same run at a few lengths and joined by straight
lines (:class:`Curve`). A line through all of them would not do: on llama.cpp a pass of one
token takes another kernel than a pass of several (one token 18 ms, two 65 ms on the 0.5B), so a
fitted ``a + b n`` put a drafted token at 2.6 times its measured cost and the "bound" below the
speed the engine measured.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DERIVATION",
    "Curve",
    "Line",
    "MethodBound",
    "PassCosts",
    "alpha_from_acceptance",
    "expected_accepted",
    "expected_tokens",
    "fit_line",
    "method_bound",
    "projected",
    "projected_speedup",
    "round_ms",
]


@dataclass(frozen=True)
class Line:
    """``a + b n``: milliseconds for a pass of ``n`` tokens."""

    a: float
    b: float

    def __call__(self, n: float) -> float:
        return self.a + self.b * n

    def scaled(self, factor: float) -> Line:
        """The same shape, every cost times ``factor``."""
        return Line(self.a * factor, self.b * factor)

    def __str__(self) -> str:
        sign = "-" if self.b < 0 else "+"
        return f"{self.a:.1f} {sign} {abs(self.b):.1f}n ms"


def fit_line(points: Sequence[tuple[float, float]]) -> Line:
    """Least-squares ``a + b n`` through ``(n, ms)`` points (one length: a flat line)."""
    if not points:
        raise ValueError("no points to fit")
    ns = [p[0] for p in points]
    ms = [p[1] for p in points]
    mean_n, mean_ms = sum(ns) / len(ns), sum(ms) / len(ms)
    var = sum((n - mean_n) ** 2 for n in ns)
    if var == 0:
        return Line(mean_ms, 0.0)
    b = sum((n - mean_n) * (m - mean_ms) for n, m in points) / var
    return Line(mean_ms - b * mean_n, b)


@dataclass(frozen=True)
class Curve:
    """Milliseconds for a pass of ``n`` tokens, measured at some lengths and joined by straight
    lines; below the shortest length the shortest's cost, beyond the longest the longest's cost
    growing at the slope of a line fitted through them all (never negative)."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        ns = [n for n, _ in self.points]
        if not ns or ns != sorted(set(ns)):
            raise ValueError("a curve needs points at distinct lengths, shortest first")

    def __call__(self, n: float) -> float:
        pts = self.points
        if n <= pts[0][0]:
            return pts[0][1]
        for (n0, m0), (n1, m1) in itertools.pairwise(pts):
            if n <= n1:
                return m0 + (m1 - m0) * (n - n0) / (n1 - n0)
        n_last, m_last = pts[-1]
        return m_last + max(0.0, fit_line(pts).b) * (n - n_last)

    def scaled(self, factor: float) -> Curve:
        """The same shape, every cost times ``factor``."""
        return Curve(tuple((n, ms * factor) for n, ms in self.points))

    def __str__(self) -> str:
        costs = ", ".join(f"{ms:.1f}" for _, ms in self.points)
        lengths = ", ".join(f"{n:g}" for n, _ in self.points)
        return f"{costs} ms for {lengths} tokens"


@dataclass(frozen=True)
class PassCosts:
    """Both models' pass costs, as measured through the seam.

    Attributes:
        device: the device model, a pass of ``n`` tokens (``device(1)``: a drafted token).
        cloud: the cloud model, a pass of ``n`` tokens (``cloud(1)``: a decoded token).
    """

    device: Line | Curve
    cloud: Line | Curve

    @property
    def cost_ratio(self) -> float:
        """Device ms per drafted token over cloud ms per decoded token (Leviathan's ``c``)."""
        return self.device(1) / self.cloud(1)


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens a round of ``k`` drafts yields: the accepted prefix and the device's token."""
    if alpha >= 1.0:
        return k + 1.0
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def alpha_from_acceptance(accepted: float, drafts: Sequence[int]) -> float:
    """The per-token acceptance ``alpha`` under which rounds of these draft lengths accept
    ``accepted`` tokens in all, on average (:func:`expected_accepted` inverted by bisection)."""
    total = sum(drafts)
    if total == 0:
        return 0.0
    if accepted >= total:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(expected_accepted(mid, k) for k in drafts) < accepted:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def expected_accepted(alpha: float, k: int) -> float:
    """``alpha + alpha^2 + ... + alpha^k``: the accepted prefix of ``k`` drafts, on average."""
    if alpha >= 1.0:
        return float(k)
    return alpha * (1 - alpha**k) / (1 - alpha)


def round_ms(
    device_ms: float,
    cloud_ms: float,
    p_full: float,
    *,
    bonus_ms: float = 0.0,
    pipelined: bool = True,
    p_held: float = 1.0,
    beside_ms: float = 0.0,
) -> float:
    """A round's time. With probability ``p_full`` the round before passed whole: the device
    also passed over that round's last draft token (``bonus_ms``, the row the token after it
    comes from), and when ``pipelined`` it did all of it while the cloud verified, if its guess
    of the token after the draft held (probability ``p_held``); else in turn with the cloud.
    ``beside_ms`` is device work done after the draft left, beside the cloud's pass (the
    context-free scoring of a draft judged on the device)."""
    cloud_ms = max(beside_ms, cloud_ms)
    both = device_ms + cloud_ms
    in_turn = both + bonus_ms
    full = max(device_ms + beside_ms + bonus_ms, cloud_ms) if pipelined else in_turn
    full = p_held * full + (1 - p_held) * in_turn
    return p_full * full + (1 - p_full) * both


@dataclass(frozen=True)
class MethodBound:
    """One method's bound in one run.

    Attributes:
        tokens_per_second: the bound.
        alpha: the per-token acceptance behind it (``None``: no drafts).
        tokens_per_round: ``E`` averaged over the rounds' draft lengths.
        round_ms: ``T`` averaged likewise.
    """

    tokens_per_second: float
    alpha: float | None = None
    tokens_per_round: float = 1.0
    round_ms: float = 0.0


def method_bound(
    kind: str,
    costs: PassCosts,
    rtt_ms: float,
    *,
    drafts: Sequence[int] = (),
    accepted: float = 0,
    scores_draft: bool = True,
    pipelined: bool = True,
    guess_held: float = 1.0,
    scores_beside: bool = False,
) -> MethodBound:
    """The bound of one method.

    Args:
        kind: ``"device"`` (the device alone), ``"cloud"`` (the cloud alone), or ``"rounds"``
            (draft, verify, recover; token fusion is rounds of no draft).
        costs: the pass costs.
        rtt_ms: the round trip per cloud call.
        drafts: the draft length of every round (``"rounds"``).
        accepted: how many draft tokens were accepted in all.
        scores_draft: the device scores the draft without the private context in a block of
            its own (SpecSteer); a context-free drafter's own rows serve (standard speculative
            decoding).
        pipelined: the device drafts the next round during the cloud's pass.
        guess_held: the share of rounds that passed whole whose next draft, made ahead on the
            device's guess of the token after the draft, was used (measured; 1: always).
        scores_beside: the draft leaves before its context-free scoring, which runs beside the
            cloud's pass (the device judges; needs ``scores_draft`` and ``pipelined``).
    """
    if kind == "device":
        return MethodBound(1000 / costs.device(1))
    if kind == "cloud":
        return MethodBound(1000 / costs.cloud(1))
    rounds = list(drafts) or [0]
    alpha = alpha_from_acceptance(accepted, rounds)
    tokens = time = 0.0
    beside = scores_beside and scores_draft and pipelined
    for k in rounds:
        score = costs.device(k + 1) if scores_draft and k else 0.0
        device = k * costs.device(1) + (0.0 if beside else score)
        cloud = costs.cloud(k + 1) + rtt_ms
        full, bonus = (alpha**k, costs.device(1)) if k else (0.0, 0.0)
        tokens += expected_tokens(alpha, k)
        time += round_ms(
            device,
            cloud,
            full,
            bonus_ms=bonus,
            pipelined=pipelined,
            p_held=guess_held,
            beside_ms=score if beside else 0.0,
        )
    n = len(rounds)
    return MethodBound(1000 * tokens / time, alpha if any(rounds) else None, tokens / n, time / n)


def projected(costs: PassCosts, cost_ratio: float) -> PassCosts:
    """The paper's regime from this run's costs: a cloud whose pass costs the same at any block
    length (a GPU's), ``1 / cost_ratio`` times the device's cost per drafted token; the device's
    pass costs keep the shape measured here. Costs are in units of the cloud's pass."""
    scale = cost_ratio / costs.device(1)
    return PassCosts(costs.device.scaled(scale), Line(1.0, 0.0))


def projected_speedup(
    costs: PassCosts,
    cost_ratio: float,
    *,
    drafts: Sequence[int],
    accepted: float,
    pipelined: bool,
    scores_beside: bool = False,
) -> float:
    """SpecSteer's bound over the cloud alone's in :func:`projected`'s regime, no round trip."""
    regime = projected(costs, cost_ratio)
    steer = method_bound(
        "rounds",
        regime,
        0.0,
        drafts=drafts,
        accepted=accepted,
        pipelined=pipelined,
        scores_beside=scores_beside,
    )
    return steer.tokens_per_second / method_bound("cloud", regime, 0.0).tokens_per_second


#: The bound's derivation, written into docs/benchmarks.md with every run.
DERIVATION = """\
### The bound each row is compared with

Notation, all measured in the same run: `t_d` is the device model's cost for one token on a
cached prompt (a drafted token), `s(n)` its cost for one pass of `n` tokens, `V(n)` the cloud
model's cost for one pass of `n` tokens (so `V(1)` is a decoded token and `V(k + 1)` a verify
pass over a draft of `k`), `r` the round trip. Pass costs are timed through the `ModelBackend`
seam before each prompt, for `n` in 1, 2, 3, 5, 8, 13; the median of each length is kept and
lengths between them are read off straight lines joining the medians (beyond 13, the cost at 13
grows at the slope of a line fitted through all six). No single line `a + b n` fits them: on
llama.cpp a pass of one token runs another kernel than a pass of several, so `s(2)` is several
times `s(1)`, and a fitted line put `t_d` far above the cost of a drafted token. On a CPU `V(n)`
grows with `n`, on a GPU it is nearly flat. The cost ratio is `c = t_d / V(1)`, with
`t_d = s(1)`.

**Tokens per round.** If each draft token is accepted with probability `alpha`, independently,
a round of `k` drafts yields `E(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha)` tokens: the accepted
prefix and the one token the device adds after it, a recovery or the bonus token (Leviathan,
Kalman and Matias, 2023, eq. 1). `alpha` is not the acceptance rate: it is the value under which
rounds of the measured draft lengths `k_1, k_2, ...` would accept as many tokens as were
accepted, `sum_i (alpha + ... + alpha^k_i) = accepted` (solved by bisection). The draft length
changes from round to round (adaptive K), so the bound takes every measured `k_i`.

**Cost of a round.** The device drafts `k` tokens and scores them without the private context in
one block of `k + 1` (SpecSteer's `P_S0`; standard speculative decoding drafts without the
context, so its own rows serve and it has no such block): `D = k t_d + s(k + 1)`. The cloud
verifies in one pass after a round trip: `C = V(k + 1) + r`. Sequentially a round costs `D + C`.
The engine drafts the next round while the cloud verifies this one (each side on its own core);
that draft is made on a guess of the token after this draft (the device's own next token) and
is used when this round passed whole, probability `alpha^k`, and the guess held, probability
`h`. The bonus token is chosen from the cloud's candidates (SpecSteer steers it, standard
speculative decoding takes the cloud's), which the device sees only when the cloud answers, so
the guess can miss; `h` is measured like `alpha`: the share of rounds that passed whole whose
draft made ahead was used (the "guesses held" column). The next draft's first token comes from
one more device pass, over the last draft token, and then the round costs the longer side alone;
when the guess missed, the device drafts again after the cloud's answer:

    T(k) = alpha^k [h max(D + t_d, C) + (1 - h) (D + t_d + C)] + (1 - alpha^k) (D + C)

Without drafting ahead a round that passed whole costs `D + t_d + C`. The column "efficiency,
every guess held" is over the bound with `h = 1`: what drafting ahead would give if the device
could know the bonus token in advance.

When the device judges its drafts (`device_verdict`, the default, with a cloud that returns its
scores of every draft position), a draft leaves as soon as it is drafted and its context-free
block `s(k + 1)` runs beside the cloud's pass. Then only `k t_d` comes before the cloud's side,
which becomes `max(s(k + 1), C)`; a round drafted ahead costs what it did:

    T(k) = alpha^k [h max(D + t_d, C) + (1 - h) (k t_d + t_d + max(s(k + 1), C))]
           + (1 - alpha^k) (k t_d + max(s(k + 1), C))

**Bound.** `tokens/s <= sum_i E(alpha, k_i) / sum_i T(k_i)`. The baselines: the device alone
`1 / t_d`, the cloud alone `1 / V(1)`, token fusion (rounds of no draft) `1 / (V(1) + r)`.
Efficiency is the measured tokens/s over the bound: it counts what the bound leaves out (the
prompts, sampling and the fusion math, the egress guard, serialization, threads handing over).
With `c` near 1 and `V(k + 1)` several times `V(1)`, as on a CPU, `E / T` stays near
`1 / V(1)`: speculation cannot pay, however good the acceptance.

**Projection.** The paper's regime is a small device model against a 32B cloud model on a GPU:
`c` between 1/50 and 1/20 and `V(n)` flat in `n`. The projection evaluates the same bound with
this run's acceptance and draft lengths, every guess of the token after a whole draft taken as
right (`h = 1`), the device's pass costs in their measured shape scaled to `c`, `V(n) = V(1)`
and no round trip. It is arithmetic on measured acceptance, not a measurement of speed.
"""
