"""The device's side of a round: drafting, context-free scoring, and drafting ahead.

:meth:`Drafter.propose` drafts up to K tokens after the answer and returns a
:class:`~specsteer._rounds.Draft` that carries every row recovery needs. :meth:`Drafter.speculate`
drafts the next round while the cloud verifies this one, as if the whole draft passed and the
bonus token were the device's own guess (pipelining). Every draft token is drawn from a generator
seeded by its position in the answer, so a draft made ahead is token for token the one the
sequential loop would make.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch

from specsteer import fusion
from specsteer._answer import Answer, may_end
from specsteer._config import GenerationConfig
from specsteer._methods import MethodSpec
from specsteer._rounds import Draft, Drafting, DraftSchedule, Guess, LazyRow
from specsteer._wire import MAX_COMPLETION, WireDraft, WireFormat
from specsteer.backends._base import KVStream, ModelBackend

__all__ = ["Drafter", "gather", "ruled_out"]

#: Mixes the answer position into a draft seed (a 64-bit odd constant).
_GOLDEN = 0x9E3779B97F4A7C15
#: Mixes in how often a position was drawn again after a rejection that depended on it.
_REDRAW = 0xD1B54A32D192ED03


class Drafter:
    """The device model's two streams (with and without the private context) and the drafts.

    Args:
        device: the device model.
        streams: its private and public KV streams (kept across generations).
        prompt_ids: the private and public prompts, as device tokens.
        wire: how drafts travel.
        spec: the method (who drafts, the drafter's nucleus).
        cfg: the generation settings.
        seed: this generation's seed.
    """

    def __init__(
        self,
        device: ModelBackend,
        streams: tuple[KVStream, KVStream],
        prompt_ids: tuple[list[int], list[int]],
        wire: WireFormat,
        spec: MethodSpec,
        cfg: GenerationConfig,
        seed: int,
    ) -> None:
        self.device = device
        self.private, self.public = streams
        self.private_ids, self.public_ids = prompt_ids
        self.wire = wire
        self.spec = spec
        self.cfg = cfg
        self.seed = seed
        self.eos = device.eos_token_ids
        k_max = (
            max(cfg.max_draft_tokens, cfg.draft_tokens) if cfg.adaptive_draft else cfg.draft_tokens
        )
        self.schedule = DraftSchedule(k=cfg.draft_tokens, adaptive=cfg.adaptive_draft, k_max=k_max)
        # It drafts from the user's own answer: the cloud's view may hold placeholders for spans
        # kept on the device, and those must never be fed to a drafter.
        public_drafter = spec.drafter == "public"
        self._stream = self.public if public_drafter else self.private
        self._prompt = self.public_ids if public_drafter else self.private_ids
        self._top_p = cfg.top_p if spec.draft_top_p is None else spec.draft_top_p
        self._redraws: dict[int, int] = {}
        #: Tokens ruled out at answer positions (a refusal's start:
        #: :class:`~specsteer._opening.RefusalGuard`).
        self.banned: Mapping[int, set[int]] = {}

    # -- drafts ------------------------------------------------------------------------------

    def propose(self, answer: Answer) -> Draft:
        """This round's draft after ``answer``."""
        return self.finish(self.begin(answer))

    def begin(self, answer: Answer) -> Drafting:
        """This round's draft after ``answer``, not yet drafted."""
        return self.start(answer.tokens, answer.public, self.schedule.k)

    def start(self, before: list[int], public_before: list[int], k: int) -> Drafting:
        """A draft of up to ``k`` tokens after ``before``, not yet drafted."""
        room = self.cfg.max_new_tokens - len(before)
        k = min(0 if self.spec.drafter == "none" else k, room)
        return Drafting(
            before=list(before), public_before=list(public_before), k=k, room=room, limit=k
        )

    def step(self, d: Drafting) -> None:
        """Draft one more token of ``d``."""
        lp = self.row(self._stream, self._prompt, d.before + d.tokens)
        tok = self.draw(lp, len(d.before) + len(d.tokens))
        d.rows.append(lp)
        d.tokens.append(tok)
        if tok in self.eos or float(lp[tok].exp()) < self.cfg.draft_confidence:
            d.limit = len(d.tokens)
        elif (
            len(d.tokens) == d.limit
            and d.limit < min(d.k + MAX_COMPLETION, d.room)
            and self.wire.incomplete(d.public_before, d.tokens)
        ):
            d.limit += 1

    def finish(self, d: Drafting, *, score: bool = True) -> Draft:
        """Draft what is left of ``d`` and cut it for the wire; with ``score``, score it
        context-free too (else :meth:`score` does, once the draft is out)."""
        if d.draft is None:
            while not d.done:
                self.step(d)
            wire = self.wire.cut(d.public_before, d.tokens, self.eos)
            rows = torch.stack(d.rows) if d.rows else torch.zeros(0, self.device.vocab_size)
            d.draft = self._draft(d.before, d.public_before, wire, rows[: len(wire.tokens)])
        if score:
            d.draft = self.score(d.draft)
        return d.draft

    @property
    def scores_later(self) -> bool:
        """Whether a draft can leave before it is scored: its context-free scores come from
        one block pass on the device, which then runs while the cloud verifies."""
        return self.spec.drafter == "private" and self.cfg.ctxfree_source == "device"

    def score(self, draft: Draft) -> Draft:
        """``draft`` with its context-free scores and the rows recovery reads (itself if it
        has them already)."""
        if draft.scored:
            return draft
        wire = draft.wire
        if self.spec.drafter == "public":  # the drafter is context-free: its rows are P_S0
            lp = self.wire.per_unit(gather(draft.rows, wire.tokens), wire)
            return replace(draft, ctxfree_lp=lp, scored=True)
        if self.cfg.ctxfree_source != "device" or not wire.tokens:
            row_at = self._ctxfree_at(draft.public_before, wire.tokens)
            return replace(draft, ctxfree=row_at, scored=True)
        return self._block_scored(draft)

    def _block_scored(self, draft: Draft) -> Draft:
        """One block pass over the public view scores every draft token and the bonus row;
        the draft ends before a token the public side rules out."""
        public_before, wire = draft.public_before, draft.wire
        logits = self.public.logits(self.public_ids + public_before, wire.tokens)
        ctxfree = fusion.processed_log_probs(
            logits, public_before, self.cfg.processing, wire.tokens
        )  # [len(tokens) + 1, V]
        cut = self._within_public(public_before, wire, ctxfree)
        lp = self.wire.per_unit(gather(ctxfree[: len(cut.tokens)], cut.tokens), cut)
        if len(cut.tokens) < len(wire.tokens):
            rows = draft.rows[: len(cut.tokens)]
            draft = self._draft(draft.before, public_before, cut, rows)
        return replace(draft, ctxfree_lp=lp, ctxfree=ctxfree.__getitem__, scored=True)

    def _within_public(
        self, public_before: list[int], wire: WireDraft, ctxfree: torch.Tensor
    ) -> WireDraft:
        """The draft up to the first token the context-free model rules out.

        The cloud's view of the answer can differ from the user's (a span kept on the device
        reads as a placeholder there), so a processing rule such as ``no_repeat_ngram_size`` can
        rule out, on the public side, a token the private drafter wrote. The cloud would rule it
        out too: the round ends before it, and the device recovers there.
        """
        tokens = wire.tokens
        picked = ctxfree[torch.arange(len(tokens)), torch.tensor(tokens, dtype=torch.long)]
        ruled_out = torch.nonzero(torch.isneginf(picked))
        if not ruled_out.numel():
            return wire
        return self.wire.cut(public_before, tokens[: int(ruled_out[0])], self.eos)

    def _draft(
        self, before: list[int], public_before: list[int], wire: WireDraft, rows: torch.Tensor
    ) -> Draft:
        """An unscored draft of ``wire``'s tokens after ``before``."""
        tokens = wire.tokens
        after = LazyRow(lambda: self.row(self._stream, self._prompt, before + tokens))
        return Draft(before, public_before, wire, rows, None, after, None, scored=False)

    def _ctxfree_at(
        self, public_before: list[int], tokens: list[int]
    ) -> Callable[[int], torch.Tensor]:
        """``P_S0``'s row at a draft position, computed when asked for."""
        return lambda n: self.row(self.public, self.public_ids, public_before + tokens[:n])

    def head(self, draft: Draft, n: int) -> Draft:
        """The first ``n`` tokens of ``draft`` as a draft of their own (text mode may end it
        sooner, on a whole character)."""
        wire = self.wire.cut(draft.public_before, draft.tokens[:n], self.eos)
        tokens = wire.tokens
        lp = None
        if draft.ctxfree_lp is not None:
            values = [min(0.0, float(draft.ctxfree_row(i)[t])) for i, t in enumerate(tokens)]
            lp = self.wire.per_unit(values, wire)
        after = LazyRow(lambda: draft.drafter_row(len(tokens)))
        rows = draft.rows[: len(tokens)]
        return Draft(draft.before, draft.public_before, wire, rows, lp, after, draft.ctxfree)

    def speculate(
        self, draft: Draft, answered: Callable[[], bool], *, score: bool = True
    ) -> Guess | None:
        """The next round's draft, assuming ``draft`` passes whole with the device's bonus guess.

        Drafting stops as soon as ``answered()``: the draft is finished only if it is used
        (and scored context-free with ``score``).
        """
        cfg, tokens = self.cfg, draft.tokens
        if not tokens or tokens[-1] in self.eos or self.spec.drafter == "none":
            return None
        assumed = list(tokens)
        if cfg.bonus_token:
            guess = self.guess(draft)
            assumed.append(guess)
            if guess in self.eos:
                return Guess(assumed, None)
        before = draft.before + assumed
        if len(before) >= cfg.max_new_tokens:
            return Guess(assumed, None)
        nxt = self.start(before, draft.public_before + assumed, self.schedule.after(True))
        while not nxt.done and not answered():
            self.step(nxt)
        if not answered():
            self.finish(nxt, score=score)
        return Guess(assumed, nxt)

    def guess(self, draft: Draft) -> int:
        """The device's own next token after the whole of ``draft``, drawn as a draft token."""
        n = len(draft.tokens)
        return self.draw(draft.drafter_row(n), len(draft.before) + n)

    def after_round(self, draft: Draft, full: bool) -> None:
        """Update the draft length after a verified round (``full``: it passed whole)."""
        if draft.tokens:
            self.schedule.k = self.schedule.after(full)

    # -- tokens ------------------------------------------------------------------------------

    def device_token(self, answer: Answer) -> int:
        """The device model's own next token with the private context (device-only decoding)."""
        lp = self.row(self.private, self.private_ids, answer.tokens)
        return self.draw(lp, len(answer.tokens), self.cfg.top_p)

    def greedy(self, answer: Sequence[int]) -> int:
        """The device model's greedy next token after ``answer`` with the private context,
        processed as its drafts are (repetition penalty, n-gram ban); the text guards read
        ahead with it."""
        return int(self.row(self.private, self.private_ids, list(answer)).argmax())

    def redraw(self, positions: range) -> None:
        """Draw these answer positions afresh next time: a text-mode unit was rejected as a
        whole, so its tokens past the recovery were judged too, and drawing them again from the
        same seed would repeat what the cloud just rejected."""
        for p in positions:
            self._redraws[p] = self._redraws.get(p, 0) + 1

    def draw(self, lp: torch.Tensor, position: int, top_p: float | None = None) -> int:
        """A token at answer ``position``, from a generator seeded by that position (and by how
        often it was drawn again, see :meth:`redraw`)."""
        seed = self.seed + position * _GOLDEN + self._redraws.get(position, 0) * _REDRAW
        gen = torch.Generator().manual_seed(seed % 2**63)
        ruled = self.ruled_out(position)
        if ruled:
            lp = lp.clone()
            lp[torch.tensor(sorted(ruled), dtype=torch.long)] = -torch.inf
        return fusion.draft_token(lp, self.cfg.greedy, gen, self._top_p if top_p is None else top_p)

    def ruled_out(self, position: int) -> set[int]:
        """The tokens no draft and no recovery may write at answer ``position`` (:func:`ruled_out`)."""
        return ruled_out(position, self.eos, self.cfg, self.banned)

    def row(self, stream: KVStream, prompt_ids: list[int], answer: list[int]) -> torch.Tensor:
        """``[V]`` processed log-probabilities of the token after ``prompt_ids + answer``."""
        logits = stream.logits(prompt_ids + answer)[0]
        return fusion.processed_log_probs(logits, answer, self.cfg.processing)


def ruled_out(
    position: int, eos: frozenset[int], cfg: GenerationConfig, banned: Mapping[int, set[int]]
) -> set[int]:
    """The tokens ruled out at answer ``position``: a refusal's start (``banned``), and the end
    tokens where the answer may not end yet (a run that ignores the end, or one before
    ``cfg.min_new_tokens``)."""
    ruled = set(banned.get(position, ()))
    if not may_end(position, ignore_eos=cfg.ignore_eos, min_tokens=cfg.min_new_tokens):
        ruled |= eos
    return ruled


def gather(rows: torch.Tensor, ids: list[int]) -> list[float]:
    """``rows[i, ids[i]]`` as plain floats (clamped to <= 0 for the wire)."""
    if not ids:
        return []
    vals = rows[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)]  # [K]
    return [min(0.0, float(v)) for v in vals.tolist()]
