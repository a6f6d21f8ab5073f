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

import torch

from specsteer._answer import Answer
from specsteer._drafter import Drafter
from specsteer._errors import ProtocolError
from specsteer._events import DeviceWork, Fallback, Round, RoundEvent, TokenKind, Tokens
from specsteer._link import CloudLink, Failed, KeptLocal, Verified
from specsteer._methods import MethodSpec
from specsteer._recover import Steering
from specsteer._rounds import Draft, Drafting, Guess
from specsteer.cloud_adapter import VerifyResponse

__all__ = ["RoundLoop"]

Events = Generator[RoundEvent, None, None]


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
        pool: runs the cloud exchange beside the device's drafting; ``None`` is sequential.
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
        pool: Executor | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.answer = answer
        self.drafter = drafter
        self.link = link
        self.spec = spec
        self.steering = steering
        self.recover_gen = recover_gen
        self.bonus_token = bonus_token
        self.pool = pool
        self.clock = clock

    def run(self) -> Events:
        """The rounds until the answer ends or is full."""
        pending: Drafting | None = None
        while not self.answer.done:
            if self.link is None:
                yield from self.device_step()
                continue
            t = self.clock()
            draft = self.drafter.finish(pending or self.drafter.begin(self.answer))
            hidden = self.link.screen(draft) if draft.tokens else None
            yield DeviceWork(self.clock() - t)
            pending = None
            if hidden is not None:
                yield from self.keep_local(draft, hidden, "guard")
                continue
            outcome, guess = yield from self.exchange(self.link, draft)
            if isinstance(outcome, Verified):
                new = yield from self.take(draft, outcome.response)
                whole = self.drafter.wire.accepted(draft.wire, outcome.response.n_accepted)
                if guess is not None:
                    pending = guess.holds(new, whole == len(draft.tokens))
            elif isinstance(outcome, KeptLocal):  # the guard refused the payload
                yield from self.keep_local(draft, self.link.screen(draft, force=True), "refused")
            else:
                yield from self.fall_back(outcome.reason)

    def exchange(
        self, link: CloudLink, draft: Draft
    ) -> Generator[RoundEvent, None, tuple[Verified | KeptLocal | Failed, Guess | None]]:
        """Send ``draft``; when pipelined, draft the next round while it is out."""
        request = link.request(draft)
        guess: Guess | None = None
        if self.pool is None:
            outcome = link.verify(request)
        else:
            future = self.pool.submit(link.verify, request)
            t = self.clock()
            try:
                guess = self.drafter.speculate(draft, future.done)
            finally:
                spent = self.clock() - t
                outcome = future.result()
            yield DeviceWork(spent)
        yield outcome.exchange
        return outcome, guess

    def take(
        self, draft: Draft, response: VerifyResponse
    ) -> Generator[RoundEvent, None, list[int]]:
        """Apply the cloud's verdict: the accepted tokens and the device's own next token.

        Returns the tokens the round added when it added all it meant to and the answer goes
        on, else ``[]`` (the round's guess cannot hold then).
        """
        t = self.clock()
        tokens = draft.tokens
        n = self.drafter.wire.accepted(draft.wire, response.n_accepted)
        accepted = tokens[:n]
        full = n == len(tokens) and len(tokens) > 0
        recovered = not (accepted and accepted[-1] in self.answer.eos)
        recovered = recovered and (not full or self.bonus_token)
        extra: list[int] = []
        failure = None
        if recovered:
            try:
                extra = self.recover(draft, n, response)
            except ProtocolError as e:  # no candidate the device can write: keep the accepted
                failure, recovered = f"{type(e).__name__}: {e}", False  # tokens, go on alone
        yield DeviceWork(self.clock() - t)
        self.drafter.after_round(draft, full)
        got = yield from self.append(accepted, "accepted")
        yield Round(tuple(tokens), n, recovered)
        if failure is not None:
            yield from self.fall_back(failure)
        more = yield from self.append(extra, "recovered")
        new = accepted + extra
        return new if len(got) + len(more) == len(new) and not self.answer.ended else []

    def recover(self, draft: Draft, n: int, response: VerifyResponse) -> list[int]:
        """The device tokens of the candidate the method's recovery takes at position ``n``.

        Raises:
            ProtocolError: no candidate is something the device can write.
        """
        assert self.spec.recover is not None, "a method with rounds recovers"
        cands = self.drafter.wire.candidates(response)
        if self.answer.ignore_eos:
            cands = cands.without(self.answer.eos)
        index = self.spec.recover(draft, n, cands, self.steering, self.recover_gen)
        return cands.tokens[index]

    def keep_local(self, draft: Draft, public: list[int] | None, reason: str) -> Events:
        """The user gets the draft; the cloud's view of the answer becomes ``public``."""
        assert public is not None, "a round kept local has a public view"
        got = self.answer.take_local(draft.tokens, public)
        yield Round(tuple(draft.tokens), len(got), recovered=False, local=True, reason=reason)
        if got:
            yield Tokens(got, "local")

    def device_step(self) -> Events:
        """One token on the device with the private context."""
        t = self.clock()
        tok = self.drafter.device_token(self.answer)
        yield DeviceWork(self.clock() - t)
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
