"""The round loop: propose, verify, recover, as a stream of round events.

A round drafts on the device (:class:`~specsteer._drafter.Drafter`), sends the draft through the
:class:`~specsteer._link.CloudLink`, and takes the accepted tokens plus one token the device
chooses (the method's recovery, :mod:`specsteer._recover`). A draft that carries private text, or
a payload the guard refuses, keeps its round on the device; a cloud that fails turns the rest of
the answer device-only. With a pool, the device drafts the next round while the cloud verifies
this one (pipelining); the answer is the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any

import torch

from specsteer._answer import Answer
from specsteer._drafter import Drafter
from specsteer._errors import ProtocolError
from specsteer._events import DeviceWork, Fallback, Round, RoundEvent, TokenKind, Tokens
from specsteer._guards import TextGuard
from specsteer._link import CloudLink, Failed, KeptLocal, Verified
from specsteer._methods import MethodSpec
from specsteer._recover import ResidualExhausted, Steering, guess_passes
from specsteer._rounds import Draft, Drafting, Guess
from specsteer._wire import Candidates
from specsteer.cloud_adapter import VerifyResponse

__all__ = ["RoundLoop"]

Events = Generator[RoundEvent, None, None]

#: Requests for more draws of one position before an exact correction settles for the top-k
#: (each fails with probability (1 - TV)^32 for 32 draws: in practice the first suffices).
MAX_REDRAWS = 8


class RoundLoop:
    """One generation's rounds.

    Args:
        answer: the answer to grow.
        drafter: the device side.
        link: the way to the cloud; ``None`` writes every token on the device.
        spec: the method.
        steering: the recovery's settings.
        recover_gen: the recovery's randomness.
        bonus_token: take the device's token after a draft that passed whole.
        judged_bonus: there, keep the device's own next token when it passes the ratio test
            (methods that judge their guess, :attr:`MethodSpec.judges_guess`).
        pool: runs the cloud exchange beside the device's drafting; ``None`` is sequential.
        device_verdict: when pipelined, send drafts before their context-free scoring and
            judge them on the device from the cloud's scores of every position, where the link
            can (:attr:`CloudLink.can_judge`): the scoring then runs beside the cloud's pass.
        guard: for a text written as the user, keeps its first words from turning into a
            refusal and the user's things from becoming the reader's, and ends it before it
            reads out the user's notes (:class:`~specsteer._guards.TextGuards`; the drafter
            and the recovery read the tokens it rules out, and the loop writes the end token
            where it ends the text).
        clock: seconds, for the device's time.
    """

    def __init__(
        self,
        answer: Answer,
        drafter: Drafter,
        link: CloudLink | None,
        spec: MethodSpec,
        steering: Steering,
        recover_gen: torch.Generator,
        *,
        bonus_token: bool = True,
        judged_bonus: bool = False,
        pool: Executor | None = None,
        device_verdict: bool = False,
        guard: TextGuard | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.answer = answer
        self.drafter = drafter
        self.link = link
        self.spec = spec
        self.steering = steering
        self.recover_gen = recover_gen
        self.bonus_token = bonus_token
        self.judged_bonus = judged_bonus and spec.judges_guess
        self.pool = pool
        self.device_verdict = device_verdict
        self.guard = guard
        if guard is not None:
            drafter.banned = guard.banned
        self.clock = clock

    def run(self) -> Events:
        """The rounds until the answer ends or is full."""
        pending: Drafting | None = None
        while not self.answer.done:
            if self.ends_here():
                yield from self.append([self.drafter.device.end_token_id], "device")
            elif self.link is None:
                yield from self.device_step()
            else:
                pending = yield from self.round(self.link, pending)

    def round(
        self, link: CloudLink, pending: Drafting | None
    ) -> Generator[RoundEvent, None, Drafting | None]:
        """One round: propose, screen, verify, recover. Returns the next round's draft when a
        pipelined guess held."""
        t = self.clock()
        later = self.scores_later(link)
        draft = self.drafter.finish(pending or self.drafter.begin(self.answer), score=not later)
        draft = self.within_guard(draft)
        hidden = link.screen(draft) if draft.tokens else None
        held: list[int] = []
        if hidden is None:
            draft, held = self.within_lift(link, draft)
        yield DeviceWork(self.clock() - t)
        if hidden is not None:
            yield from self.keep_local(draft, hidden, "guard")
            return None
        if held and not draft.tokens:
            yield from self.keep_lifted(link, held)
            return None
        outcome, guess, draft = yield from self.exchange(link, draft, _lift_note(link, draft, held))
        if isinstance(outcome, KeptLocal):  # the guard refused the payload
            yield from self.keep_local(draft, link.screen(draft, force=True), "refused")
            return None
        if link.lift is not None and outcome.exchange.bytes_sent:
            link.lift.sent(draft.lifts())
        if isinstance(outcome, Failed):
            yield from self.fall_back(outcome.reason)
            return None
        new = yield from self.take(link, draft, outcome.response, held, guess)
        n = self.drafter.wire.accepted(draft.wire, outcome.response.n_accepted)
        return guess.holds(new, n == len(draft.tokens)) if guess is not None else None

    def ends_here(self) -> bool:
        """Whether the guard ended the text where the answer now stands (before it read out
        another of the user's notes, :class:`~specsteer._recital.RecitalGuard`)."""
        at = len(self.answer.tokens)
        return self.guard is not None and at in self.guard.ends and self.answer.may_end(at)

    def within_guard(self, draft: Draft) -> Draft:
        """``draft`` up to a token the guard rules out, which the cloud never sees and the
        device never keeps (a round kept on the device appends its draft as it is)."""
        cut = self.guard.cut(self.answer.tokens, draft.tokens) if self.guard is not None else None
        return draft if cut is None else self.drafter.head(draft, cut)

    def within_lift(self, link: CloudLink, draft: Draft) -> tuple[Draft, list[int]]:
        """The part of ``draft`` the context-lift policy lets out, and the tokens it holds back
        (from the first token over the policy on)."""
        policy = link.lift
        if policy is None or not draft.tokens:
            return draft, []
        cut = policy.allowance(draft.lifts())
        if cut >= len(draft.tokens):
            return draft, []
        head = self.drafter.head(draft, cut)
        return head, draft.tokens[len(head.tokens) :]

    def scores_later(self, link: CloudLink) -> bool:
        """Whether this round's draft leaves before its context-free scoring (the device then
        judges it from the cloud's scores of every position)."""
        return (
            self.device_verdict
            and self.pool is not None
            and self.drafter.scores_later
            and link.can_judge
        )

    def exchange(
        self, link: CloudLink, draft: Draft, note: dict[str, Any] | None = None
    ) -> Generator[RoundEvent, None, tuple[Verified | KeptLocal | Failed, Guess | None, Draft]]:
        """Send ``draft``; when pipelined, draft the next round while it is out. A draft sent
        unscored is scored meanwhile and judged here on the cloud's scores. Returns the outcome,
        the guess made ahead, and the draft as judged (scored)."""
        later = not draft.scored
        request = link.request(draft, device_verdict=later)
        guess: Guess | None = None
        if self.pool is None:
            outcome = link.verify(request, note)
            draft = self.drafter.score(draft)
        else:
            future = self.pool.submit(link.verify, request, note)
            t = self.clock()
            try:
                draft = self.drafter.score(draft)
                guess = self.drafter.speculate(draft, future.done, score=not later)
            finally:
                spent = self.clock() - t
                outcome = future.result()
            yield DeviceWork(spent)
        if later and isinstance(outcome, Verified):
            outcome = link.judged(outcome, request, draft)
        yield outcome.exchange
        return outcome, guess, draft

    def take(
        self,
        link: CloudLink,
        draft: Draft,
        response: VerifyResponse,
        held: list[int],
        guess: Guess | None = None,
    ) -> Generator[RoundEvent, None, list[int]]:
        """Apply the cloud's verdict: the accepted tokens and the device's own next token (or,
        after a draft the context-lift policy cut short that passed whole, the tokens it held
        back, kept on the device). ``guess`` is the next draft made ahead, if any: the round
        event says whether it held.

        Returns the tokens the round added when it added all it meant to and the answer goes
        on, else ``[]`` (the round's guess cannot hold then).
        """
        t = self.clock()
        tokens = draft.tokens
        n = self.drafter.wire.accepted(draft.wire, response.n_accepted)
        accepted = tokens[:n]
        full = n == len(tokens) and len(tokens) > 0
        holding = bool(held) and n == len(tokens)
        recovered = not (accepted and accepted[-1] in self.answer.eos) and not holding
        recovered = recovered and (not full or self.bonus_token)
        extra: list[int] = []
        failure = None
        if recovered:
            try:
                extra = self.judged_guess(link, draft, response) if full else []
                if not extra:
                    extra = yield from self.recover(link, draft, n, response)
            except ProtocolError as e:  # no candidate the device can write: keep the accepted
                failure, recovered = f"{type(e).__name__}: {e}", False  # tokens, go on alone
        yield DeviceWork(self.clock() - t)
        self.drafter.redraw(_judged_past(draft, response, len(extra)))
        accepted, extra, full = self.guarded(accepted, extra, full)
        n, recovered = len(accepted), recovered and bool(extra)
        self.drafter.after_round(draft, full)
        got = yield from self.append(accepted, "accepted")
        ahead = guess.held(accepted + extra, full) if guess is not None else None
        yield Round(tuple(tokens), n, recovered, ahead=ahead)
        if failure is not None:
            yield from self.fall_back(failure)
        if holding:
            yield from self.keep_lifted(link, held)
            return []
        more = yield from self.add_recovered(link, draft, n, extra)
        new = accepted + extra
        return new if len(got) + len(more) == len(new) and not self.answer.ended else []

    def guarded(
        self, accepted: list[int], extra: list[int], full: bool
    ) -> tuple[list[int], list[int], bool]:
        """The round's accepted and recovered tokens up to one the guard rules out (a refusal's
        start, a "your" before the user's things), and whether the round still passed whole."""
        new = accepted + extra
        cut = self.guard.cut(self.answer.tokens, new) if self.guard is not None else None
        if cut is None:
            return accepted, extra, full
        return accepted[:cut], new[len(accepted) : cut], False

    def judged_guess(self, link: CloudLink, draft: Draft, response: VerifyResponse) -> list[int]:
        """The device's own next token after ``draft``, which passed whole, when it passes the
        ratio test at the bonus position (:func:`~specsteer._recover.guess_passes`), else
        ``[]``: the recovery writes the bonus."""
        if not self.judged_bonus:
            return []
        params = link.params
        guess = self.drafter.guess(draft)
        cands = self.candidates(response, len(self.answer.tokens) + len(draft.tokens))
        passes = guess_passes(draft, guess, cands, params.lam, params.greedy, self.recover_gen)
        return [guess] if passes else []

    def recover(
        self, link: CloudLink, draft: Draft, n: int, response: VerifyResponse
    ) -> Generator[RoundEvent, None, list[int]]:
        """The device tokens the method's recovery writes at position ``n``. An exact
        correction whose draws of the cloud's distribution all failed asks for more draws of
        the same position (a request with an empty draft there).

        Raises:
            ProtocolError: no candidate is something the device can write, or the cloud could
                not answer a request for more draws.
        """
        assert self.spec.recover is not None, "a method with rounds recovers"
        cands = self.candidates(response, len(self.answer.tokens) + n)
        for _ in range(MAX_REDRAWS):
            try:
                return self.spec.recover(draft, n, cands, self.steering, self.recover_gen)
            except ResidualExhausted:
                cands = yield from self.more_draws(link, draft, n)
        cands = replace(cands, samples=())  # so unlikely it never happens: the top-k residual
        return self.spec.recover(draft, n, cands, self.steering, self.recover_gen)

    def candidates(self, response: VerifyResponse, at: int) -> Candidates:
        """The cloud's candidates at answer position ``at``, less what the device rules out
        there (the end tokens where the answer may not end, a refusal's start)."""
        cands = self.drafter.wire.candidates(response)
        ruled = self.drafter.ruled_out(at)
        return cands.without(frozenset(ruled)) if ruled else cands

    def more_draws(
        self, link: CloudLink, draft: Draft, n: int
    ) -> Generator[RoundEvent, None, Candidates]:
        """Fresh draws of the cloud's distribution at draft position ``n``."""
        done = draft.tokens[:n]
        empty = self.drafter.start(draft.before + done, draft.public_before + done, 0)
        outcome = link.verify(link.request(self.drafter.finish(empty)))
        yield outcome.exchange
        if not isinstance(outcome, Verified):
            raise ProtocolError("the cloud did not answer a request for more draws")
        return self.candidates(outcome.response, len(self.answer.tokens) + n)

    def add_recovered(
        self, link: CloudLink, draft: Draft, n: int, extra: list[int]
    ) -> Generator[RoundEvent, None, tuple[int, ...]]:
        """Append the recovered tokens. The steered pick enters the next request's prefix, so
        the context-lift policy judges it too: when it keeps it, the cloud's view of the answer
        gets a placeholder instead."""
        policy = link.lift
        if policy is None or not extra:
            return (yield from self.append(extra, "recovered"))
        lift = draft.lift(n, extra[0])
        if policy.allowance([lift]):
            policy.sent([lift])
            return (yield from self.append(extra, "recovered"))
        public = link.conceal(self.answer.public, self.text_after(extra))
        got = self.answer.take_local(extra, public)
        policy.kept(len(got))
        if got:
            yield Tokens(got, "recovered", kept="lift")
        return got

    def keep_lifted(
        self, link: CloudLink, held: list[int]
    ) -> Generator[RoundEvent, None, tuple[int, ...]]:
        """Keep ``held`` on the device for its context lift; the cloud's view gets a
        placeholder instead."""
        assert link.lift is not None, "only the context-lift policy holds tokens back"
        public = link.conceal(self.answer.public, self.text_after(held))
        got = self.answer.take_local(held, public)
        link.lift.kept(len(got))
        yield Round(tuple(held), len(got), recovered=False, local=True, reason="lift")
        if got:
            yield Tokens(got, "local", kept="lift")
        return got

    def keep_local(self, draft: Draft, public: list[int] | None, reason: str) -> Events:
        """The user gets the draft; the cloud's view of the answer becomes ``public``."""
        assert public is not None, "a round kept local has a public view"
        got = self.answer.take_local(draft.tokens, public)
        yield Round(tuple(draft.tokens), len(got), recovered=False, local=True, reason=reason)
        if got:
            yield Tokens(got, "local", kept=reason)

    def device_step(self) -> Events:
        """One token on the device with the private context."""
        t = self.clock()
        tok = self.drafter.device_token(self.answer)
        ruled = self.guard is not None and self.guard.cut(self.answer.tokens, [tok]) == 0
        yield DeviceWork(self.clock() - t)
        if not ruled:  # else the next step draws again without it
            yield from self.append([tok], "device")

    def fall_back(self, reason: str) -> Events:
        """The cloud failed: the rest of the answer is written on the device."""
        self.link = None
        yield Fallback(reason)

    def append(
        self, ids: list[int], kind: TokenKind
    ) -> Generator[RoundEvent, None, tuple[int, ...]]:
        """Append ``ids`` to the answer (as far as it goes) and say so."""
        got = self.answer.take(ids)
        if got:
            yield Tokens(got, kind)
        return got

    def text_after(self, ids: list[int]) -> str:
        """The text ``ids`` add to the user's answer."""
        decode = self.drafter.device.decode
        return decode([*self.answer.tokens, *ids])[len(decode(self.answer.tokens)) :]


def _lift_note(link: CloudLink, draft: Draft, held: list[int]) -> dict[str, Any] | None:
    """What the audit record says of a draft under the context-lift policy."""
    if link.lift is None:
        return None
    lifts = draft.lifts()
    return {
        "context_lift": {
            "draft_nats": round(sum(max(0.0, x) for x in lifts), 4),
            "largest": round(max(lifts, default=0.0), 4),
            "held_back_tokens": len(held),
        }
    }


def _judged_past(draft: Draft, response: VerifyResponse, recovered: int) -> range:
    """The answer positions a text-mode rejection judged that its recovery did not write:
    through the end of the rejected segment, which the cloud names (``judged``), or else the
    rest of the draft. Empty in token-id mode, where the rejected token is the one the
    recovery replaces and nothing after it was judged."""
    counts = draft.wire.counts
    units = response.n_accepted
    if counts is None or units >= len(counts):
        return range(0)
    judged = len(counts) if response.judged is None else min(response.judged, len(counts))
    start = len(draft.before) + sum(counts[:units])
    return range(start + recovered, len(draft.before) + sum(counts[:judged]))
