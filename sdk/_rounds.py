"""The draft / verify / recover loop, shared by every cloud-verified method and wire mode.

A round drafts a block on the device, sends it for verification, and takes the accepted tokens
plus one token chosen on the device (a recovery, or the bonus token after a fully accepted draft).

**Pipelining.** While the cloud verifies round r, the device drafts round r+1 as if every token
were accepted and the bonus token were its own guess; it stops drafting as soon as the answer
is in. If the round came back that way the speculative draft is used (and finished); otherwise
it is dropped. Drafts draw from a generator seeded
by the answer position, so a speculative block is token for token the block the sequential loop
would draft: pipelined and sequential runs give identical answers.

**Adaptive K.** The draft grows by two tokens after a fully accepted round and shrinks by one
after a rejection, within ``[1, max_draft_tokens]`` (as transformers' assisted generation does).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from specsteer import fusion
from specsteer._config import GenerationConfig
from specsteer._errors import ProtocolError
from specsteer._methods import Block, CloudMethod, Steered
from specsteer._result import RoundStat
from specsteer._wire import MAX_COMPLETION, WireFormat
from specsteer.backends._base import KVStream
from specsteer.cloud_adapter import ChatMessage, VerifyParams, VerifyRequest, VerifyResponse

if TYPE_CHECKING:
    from specsteer._engine import Decoder, _Run

__all__ = ["DraftSchedule", "Drafting", "Rounds", "no_eos", "request_id"]

#: Mixes the answer position into a draft seed (a 64-bit odd constant).
_GOLDEN = 0x9E3779B97F4A7C15


@dataclass
class DraftSchedule:
    """How many tokens the next round drafts."""

    k: int
    adaptive: bool
    k_max: int

    @classmethod
    def of(cls, cfg: GenerationConfig) -> DraftSchedule:
        k_max = (
            max(cfg.max_draft_tokens, cfg.draft_tokens) if cfg.adaptive_draft else cfg.draft_tokens
        )
        return cls(k=cfg.draft_tokens, adaptive=cfg.adaptive_draft, k_max=k_max)

    def after(self, full: bool) -> int:
        """The size after a round that was fully accepted (``full``) or not."""
        if not self.adaptive:
            return self.k
        return min(self.k + 2, self.k_max) if full else max(1, self.k - 1)


@dataclass
class Drafting:
    """A draft in progress: drafted a token at a time, so it can stop and go on later."""

    out: list[int]  # the user's answer before the draft
    pub_out: list[int]  # the cloud's view of it
    k: int
    room: int  # tokens left before max_new_tokens
    limit: int  # k, grown while a text-mode draft ends inside a character
    tokens: list[int] = field(default_factory=list)
    rows: list[torch.Tensor] = field(default_factory=list)
    block: Block | None = None  # set once finished

    @property
    def done(self) -> bool:
        return len(self.tokens) >= self.limit


@dataclass
class _Guess:
    """A speculative next round: the continuation it assumes and its draft."""

    assumed: list[int]
    draft: Drafting | None


class Rounds:
    """One generation's rounds with a cloud-verified method.

    Args:
        decoder: the decoder (models, streams, the egress and the exchange with the cloud).
        run: the generation's state.
        strategy: the method.
        wire: the wire mode.
        pool: runs the exchange with the cloud beside the device's drafting; ``None`` is the
            sequential loop.
    """

    def __init__(
        self,
        decoder: Decoder,
        run: _Run,
        strategy: CloudMethod | None,
        wire: WireFormat,
        prompt: tuple[tuple[ChatMessage, ...], list[int], list[int]],
        gens: list[torch.Generator],
        seed: int,
        pool: Executor | None,
    ) -> None:
        self.decoder = decoder
        self.run = run
        self.cfg = run.config
        self.strategy: CloudMethod = strategy or Steered()
        self.device_only = strategy is None
        self.wire = wire
        self.public_msgs, self.private_ids, self.public_ids = prompt
        self.private: KVStream = decoder._private
        self.public: KVStream = decoder._public
        self.eos = decoder.device.eos_token_ids
        self.recover_gen, self.seed_gen = gens
        self.seed = seed
        self.pool = pool
        self.schedule = DraftSchedule.of(self.cfg)

    # -- the loop ----------------------------------------------------------------------------

    def loop(self, emit: Callable[[list[int]], None]) -> None:
        run, cfg = self.run, self.cfg
        pending: Drafting | None = None
        while not run.finished and len(run.out) < cfg.max_new_tokens:
            if run.fallback is not None or self.device_only:
                self.device_step(emit)
                continue
            t = time.perf_counter()
            block = self.finish(pending or self.start(run.out, run.pub_out, self.schedule.k))
            pending = None
            if block.tokens and self.decoder._keep_local(run, block.tokens, self.eos, emit):
                run.device_s += time.perf_counter() - t
                continue
            run.device_s += time.perf_counter() - t
            request = self.request(block)
            response, guess = self.exchange(request, block)
            if response is None:
                if run.fallback is None:  # the guard refused the payload: keep the round local
                    self.decoder._keep_local(run, block.tokens, self.eos, emit, force=True)
                continue  # or the cloud failed: device-only from here on
            new = self.take(block, response, emit)
            # The guess holds only if the whole draft passed (a recovered candidate can spell the
            # draft and the guess too, in text mode, but K then shrinks) and the bonus matched.
            whole = bool(run.rounds) and run.rounds[-1].accepted == len(block.tokens)
            if guess is not None and guess.draft is not None and whole and new == guess.assumed:
                pending = guess.draft

    def exchange(
        self, request: VerifyRequest, block: Block
    ) -> tuple[VerifyResponse | None, _Guess | None]:
        """Send ``request``; when pipelined, draft the next round while it is out."""
        if self.pool is None:
            return self.decoder._exchange(request, self.run), None
        future = self.pool.submit(self.decoder._exchange, request, self.run)
        t = time.perf_counter()
        try:
            guess = self.speculate(block, future.done)
        finally:
            self.run.device_s += time.perf_counter() - t
            response = future.result()
        return response, guess

    def take(
        self, block: Block, response: VerifyResponse, emit: Callable[[list[int]], None]
    ) -> list[int]:
        """Apply the cloud's verdict: the accepted tokens and the device's own next token."""
        run, cfg = self.run, self.cfg
        t = time.perf_counter()
        n = self.wire.accepted(block.wire, response.n_accepted)
        tokens = block.tokens
        new = tokens[:n]
        full = n == len(tokens) and len(tokens) > 0
        recovered = not (new and new[-1] in self.eos) and (not full or cfg.bonus_token)
        if recovered:
            try:
                new = new + self.recover(block, n, response)
            except ProtocolError as e:  # no candidate the device can write: keep the accepted
                run.fallback = f"{type(e).__name__}: {e}"  # tokens, go on without the cloud
                recovered = False
        run.device_s += time.perf_counter() - t
        run.rounds.append(RoundStat(drafted=len(tokens), accepted=n, recovered=recovered))
        if tokens:
            self.schedule.k = self.schedule.after(full)
        before = len(run.out)
        self.decoder._append(run, new, self.eos, emit)
        return new if len(run.out) - before == len(new) and not run.finished else []

    def recover(self, block: Block, n: int, response: VerifyResponse) -> list[int]:
        cands = self.wire.candidates(response)
        if self.cfg.ignore_eos:
            cands = cands.without(self.eos)
        index = self.strategy.choose(self, block, n, cands, self.recover_gen)
        return cands.tokens[index]

    # -- drafting ----------------------------------------------------------------------------

    def start(self, out: list[int], pub_out: list[int], k: int) -> Drafting:
        """A draft of up to ``k`` tokens after ``out``, not yet drafted."""
        room = self.cfg.max_new_tokens - len(out)
        k = min(self.strategy.draft_size(k), room)
        return Drafting(out=out, pub_out=pub_out, k=k, room=room, limit=k)

    def step(self, d: Drafting) -> None:
        """Draft one more token of ``d``."""
        stream, prompt_ids = self.strategy.drafter(self)
        lp = self.row(stream, prompt_ids, d.out + d.tokens)
        tok = self.draw(lp, len(d.out) + len(d.tokens))
        d.rows.append(lp)
        d.tokens.append(tok)
        if tok in self.eos or float(lp[tok].exp()) < self.cfg.draft_confidence:
            d.limit = len(d.tokens)
        elif (
            len(d.tokens) == d.limit
            and d.limit < min(d.k + MAX_COMPLETION, d.room)
            and self.wire.incomplete(d.pub_out, d.tokens)
        ):
            d.limit += 1

    def finish(self, d: Drafting) -> Block:
        """Draft what is left of ``d``, cut it for the wire and score it context-free."""
        if d.block is not None:
            return d.block
        while not d.done:
            self.step(d)
        wire = self.wire.cut(d.pub_out, d.tokens, self.eos)
        rows = torch.stack(d.rows) if d.rows else torch.zeros(0, self.decoder.device.vocab_size)
        d.block = Block(out=d.out, pub_out=d.pub_out, wire=wire, rows=rows[: len(wire.tokens)])
        self.strategy.score_ctxfree(self, d.block)
        return d.block

    def speculate(self, block: Block, answered: Callable[[], bool]) -> _Guess | None:
        """The next round's draft, assuming ``block`` passes whole with the device's bonus guess.

        Drafting stops as soon as ``answered()``: the draft is finished only if it is used.
        """
        cfg, tokens = self.cfg, block.tokens
        if not tokens or tokens[-1] in self.eos or self.strategy.draft_size(1) == 0:
            return None
        assumed = list(tokens)
        if cfg.bonus_token:
            row = self.drafter_row(block, len(tokens))
            guess = self.draw(row, len(block.out) + len(tokens))
            assumed.append(guess)
            if guess in self.eos:
                return _Guess(assumed, None)
        out, pub_out = block.out + assumed, block.pub_out + assumed
        if len(out) >= cfg.max_new_tokens:
            return _Guess(assumed, None)
        nxt = self.start(out, pub_out, self.schedule.after(True))
        while not nxt.done and not answered():
            self.step(nxt)
        if not answered():
            self.finish(nxt)
        return _Guess(assumed, nxt)

    def drafter_row(self, block: Block, n: int) -> torch.Tensor:
        """The drafter's log-probabilities at draft position ``n`` (``len``: after the draft)."""
        if n < len(block.tokens):
            return block.rows[n]
        if block.after is None:
            stream, prompt_ids = self.strategy.drafter(self)
            block.after = self.row(stream, prompt_ids, block.out + block.tokens)
        return block.after

    def draw(self, lp: torch.Tensor, position: int, top_p: float | None = None) -> int:
        """A draft token at answer ``position``, from a generator seeded by that position."""
        gen = torch.Generator().manual_seed((self.seed + position * _GOLDEN) % 2**63)
        lp = no_eos(lp, self.eos, self.cfg)
        top_p = self.strategy.top_p(self.cfg) if top_p is None else top_p
        return fusion.draft_token(lp, self.cfg.greedy, gen, top_p)

    def row(self, stream: KVStream, prompt_ids: list[int], answer: list[int]) -> torch.Tensor:
        """``[V]`` processed log-probabilities of the token after ``prompt_ids + answer``."""
        logits = stream.logits(prompt_ids + answer)[0]
        return fusion.processed_log_probs(logits, answer, self.cfg.processing)

    def device_step(self, emit: Callable[[list[int]], None]) -> None:
        """One token on the device with the private context (device-only, or after a fallback)."""
        run = self.run
        t = time.perf_counter()
        lp = self.row(self.private, self.private_ids, run.out)
        tok = self.draw(lp, len(run.out), self.cfg.top_p)
        run.device_s += time.perf_counter() - t
        self.decoder._append(run, [tok], self.eos, emit)

    # -- the request -------------------------------------------------------------------------

    def request(self, block: Block) -> VerifyRequest:
        cfg = self.cfg
        return VerifyRequest(
            request_id=request_id(),
            model=self.decoder.model,
            prompt=list(self.public_msgs),
            prefix=block.wire.prefix,
            draft=block.wire.span,
            tokenizer=self.wire.tokenizer,
            ctxfree_logprobs=block.ctxfree_lp,
            params=VerifyParams(
                lam=self.strategy.lam(cfg),
                top_k=cfg.top_k,
                greedy=cfg.greedy,
                temperature=cfg.temperature,
                repetition_penalty=cfg.repetition_penalty,
                no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                seed=int(torch.randint(0, 2**62, (1,), generator=self.seed_gen).item()),
                target=self.strategy.target,
            ),
        )


def no_eos(lp: torch.Tensor, eos: frozenset[int], cfg: GenerationConfig) -> torch.Tensor:
    """``lp`` with the end tokens ruled out when the run ignores them."""
    if not cfg.ignore_eos or not eos:
        return lp
    out = lp.clone()
    out[torch.tensor(sorted(eos), dtype=torch.long)] = -torch.inf
    return out


#: Hex digits to letters: an id with no digit runs, so no detector can read it as a number.
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def request_id() -> str:
    """A random request id of 32 letters (128 bits), with no digit a card or phone detector
    could take for private data (a hex uuid holds a Luhn-valid 13-19 digit run about 0.2% of the
    time, and the guard would then refuse the whole payload)."""
    return secrets.token_hex(16).translate(_HEX_TO_LETTERS)
