"""The device's one way to the cloud: the egress guard, the adapter, and the check of every answer.

:meth:`CloudLink.verify` takes a :class:`~specsteer._rounds.Draft` and returns what became of it:
:class:`Verified` (the cloud's checked answer), :class:`KeptLocal` (the guard refused the payload:
nothing left) or :class:`Failed` (the cloud could not answer), each with the :class:`Exchange`
it cost. Every payload takes one path: the adapter encodes it, the guard (when there is one) scans
and audits those exact bytes, and the adapter transmits them.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import torch

from specsteer import fusion
from specsteer._egress import PrivateEgress
from specsteer._errors import CloudError, PrivacyViolation
from specsteer._events import Exchange
from specsteer._rounds import Draft
from specsteer._wire import IncrementalText
from specsteer.cloud_adapter import (
    ChatMessage,
    CloudVerifier,
    DraftScores,
    GenerateRequest,
    GenerateResponse,
    TopK,
    VerifyParams,
    VerifyRequest,
    VerifyResponse,
    check_generate_response,
    check_response,
)
from specsteer.privacy import AuditLogError, ContextLift

__all__ = ["SCREEN_WINDOW", "CloudLink", "Failed", "KeptLocal", "Verified", "request_id"]

logger = logging.getLogger(__name__)

#: Characters of the accepted answer screened again with each draft: a private span that the new
#: draft completes starts within them.
SCREEN_WINDOW = 1024


@dataclass(frozen=True)
class Verified:
    """The cloud's answer to a draft, checked against its request."""

    response: VerifyResponse
    exchange: Exchange


@dataclass(frozen=True)
class KeptLocal:
    """The guard refused the payload: nothing left, and the round stays on the device."""

    exchange: Exchange


@dataclass(frozen=True)
class Failed:
    """The cloud could not answer (or answered badly): the rest is written on the device."""

    reason: str
    exchange: Exchange


@dataclass(frozen=True)
class Generated:
    """The cloud model's own answer (``cloud_only``), checked against its request."""

    response: GenerateResponse
    exchange: Exchange


class CloudLink:
    """One generation's exchanges with the cloud.

    Args:
        cloud: the adapter.
        egress: the privacy layer's door; ``None`` sends unscreened and unaudited.
        prompt: the public prompt, as the cloud may see it.
        params: the verify parameters of every request (each gets its own ``seed``).
        model: the cloud model name put in requests.
        tokenizer: the vocabulary digest sent with token ids (``None`` in text mode).
        vocab_size: the device vocabulary size (top-k ids at or above it are refused).
        decode: the device tokenizer's ``decode`` (to screen drafts as text).
        encode: the device tokenizer's ``encode`` (to rebuild the cloud's view after a screen).
        seeds: draws each request's seed.
        clock: seconds, for the exchange times.
    """

    def __init__(
        self,
        cloud: CloudVerifier,
        egress: PrivateEgress | None,
        *,
        prompt: Sequence[ChatMessage],
        params: VerifyParams,
        model: str,
        tokenizer: str | None,
        vocab_size: int,
        decode: Callable[[Sequence[int]], str],
        encode: Callable[[str], list[int]],
        seeds: torch.Generator,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cloud = cloud
        self.egress = egress
        self.prompt = list(prompt)
        self.params = params
        self.model = model
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._text = IncrementalText(decode)
        self._encode = encode
        self._seeds = seeds
        self._clock = clock

    def screen(self, draft: Draft, *, force: bool = False) -> list[int] | None:
        """The cloud's view of the answer after ``draft`` when the draft must stay on the device
        (it carries private text), else ``None``; with ``force``, that view in every case."""
        return self.screen_ids(draft.public_before, draft.tokens, force=force)

    def screen_ids(
        self, public_before: list[int], tokens: Sequence[int], *, force: bool = False
    ) -> list[int] | None:
        """The cloud's view after ``public_before`` and ``tokens`` when the tokens must stay
        on the device (they carry private text), else ``None``; with ``force``, in every case."""
        if self.egress is None:
            return None
        prefix = self._text(public_before)
        text = self._text([*public_before, *tokens])[len(prefix) :]
        # Earlier text was screened with earlier drafts: only its tail can join the new text.
        cut = max(0, len(prefix) - SCREEN_WINDOW)
        public = self.egress.screen_draft(prefix[cut:], text, force=force)
        return None if public is None else self._encode(prefix[:cut] + public)

    @property
    def lift(self) -> ContextLift | None:
        """The context-lift policy of this generation, when there is one that can keep tokens
        back (a guard whose policy sets ``max_context_lift`` or ``context_lift_budget``)."""
        if self.egress is None or not self.egress.lift.active:
            return None
        return self.egress.lift

    def conceal(self, public_before: list[int], kept: str) -> list[int]:
        """The cloud's view after ``public_before`` when text ``kept`` stays on the device: a
        placeholder in its place (its surrounding spaces kept)."""
        assert self.egress is not None, "only a guard's policy keeps text back"
        core = kept.strip()
        if not core:
            return self._encode(self._text(public_before) + kept)
        lead = kept[: len(kept) - len(kept.lstrip())]
        trail = kept[len(kept.rstrip()) :]
        return self._encode(self._text(public_before) + lead + self.egress.conceal(core) + trail)

    @property
    def can_judge(self) -> bool:
        """Whether drafts can be judged on the device from the cloud's scores of every position
        (:meth:`judged`): token ids, a cloud that returns those scores, no draws of its whole
        distribution, a ratio test that reads ``P_S0``, and no context-lift policy (which
        reads the context-free scores before a draft leaves)."""
        params = self.params
        return (
            self.cloud.scores_every_position
            and self.tokenizer is not None
            and not params.samples
            and not params.uses_argmax
            and self.lift is None
        )

    def request(self, draft: Draft, *, device_verdict: bool = False) -> VerifyRequest:
        """The request that carries ``draft``; with ``device_verdict``, one that asks for the
        cloud's scores of every position instead of its verdict (``draft`` may be unscored)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self._seeds).item())
        update: dict[str, Any] = {"seed": seed}
        if device_verdict:
            update["verdict"] = "device"
        return VerifyRequest(
            request_id=request_id(),
            model=self.model,
            prompt=self.prompt,
            prefix=draft.wire.prefix,
            draft=draft.wire.span,
            tokenizer=self.tokenizer,
            ctxfree_logprobs=None if device_verdict else draft.ctxfree_lp,
            params=self.params.model_copy(update=update),
        )

    def judged(self, verified: Verified, request: VerifyRequest, draft: Draft) -> Verified:
        """The verdict on ``draft`` (scored, and at most as long as the draft ``request``
        carried) from the cloud's scores of every position, judged here as the cloud would:
        the same ratio test, the same seed."""
        scores = verified.response.scores
        assert scores is not None and draft.scored, "the cloud's scores and a scored draft"
        ctxfree = torch.tensor(draft.ctxfree_lp or [], dtype=torch.float64)
        verdict = request.params.judge(_scored(scores, draft.tokens), ctxfree)
        ids, logprobs = verdict.top_k
        top_k = TopK(ids=ids, logprobs=logprobs)
        update = {"n_accepted": verdict.n_accepted, "top_k": top_k, "scores": None}
        return Verified(verified.response.model_copy(update=update), verified.exchange)

    def verify(
        self, request: VerifyRequest, note: Mapping[str, Any] | None = None
    ) -> Verified | KeptLocal | Failed:
        """Send ``request`` and check the answer; ``note`` goes into its audit record."""
        tally = _Tally(self._clock())
        try:
            response = self._carry(request, tally, note)
            check_response(request, response, self.vocab_size)
        except AuditLogError as e:
            logger.warning(
                "the audit log cannot be written, so nothing was sent; continuing on the "
                "device only: %s",
                e,
            )
            return Failed(f"{type(e).__name__}: {e}", tally.exchange(self._clock()))
        except PrivacyViolation as e:
            logger.info("the egress guard kept a round on the device: %s", type(e).__name__)
            return KeptLocal(tally.exchange(self._clock()))
        except CloudError as e:
            logger.warning("cloud verification failed; continuing on the device only: %s", e)
            return Failed(f"{type(e).__name__}: {e}", tally.exchange(self._clock()))
        return Verified(response, tally.exchange(self._clock()))

    def generate(self, request: GenerateRequest, vocab_size: int) -> Generated | Failed:
        """Send a generate request (``cloud_only``) and check the answer against ``vocab_size``
        (the vocabulary of the model that reads it)."""
        tally = _Tally(self._clock())
        try:
            response = self._carry(request, tally)
            check_generate_response(request, response, vocab_size)
        except (CloudError, PrivacyViolation) as e:
            logger.warning("the cloud could not answer; nothing was generated: %s", e)
            return Failed(f"{type(e).__name__}: {e}", tally.exchange(self._clock()))
        return Generated(response, tally.exchange(self._clock()))

    @overload
    def _carry(
        self, request: VerifyRequest, tally: _Tally, note: Mapping[str, Any] | None = None
    ) -> VerifyResponse: ...
    @overload
    def _carry(
        self, request: GenerateRequest, tally: _Tally, note: Mapping[str, Any] | None = None
    ) -> GenerateResponse: ...
    def _carry(
        self,
        request: VerifyRequest | GenerateRequest,
        tally: _Tally,
        note: Mapping[str, Any] | None = None,
    ) -> VerifyResponse | GenerateResponse:
        """Send ``request`` and count both ways in ``tally``.

        With a guard, the adapter's wire bytes are scanned and audited first, and exactly those
        bytes are transmitted; without one, the adapter's own ``verify`` (or ``generate``) sends
        the request, as an adapter that overrides it expects.
        """
        cloud = self.cloud
        if self.egress is not None:
            with self.egress.sending():
                admitted = self.egress.admit(request, cloud, note)
                tally.sent = len(admitted.data)
                response: VerifyResponse | GenerateResponse
                response = _transmit(cloud, request, admitted.data)
                tally.received = len(response.model_dump_json().encode())
                receipt = response.receipt.model_dump() if response.receipt else None
                self.egress.delivered(admitted, tally.received, receipt)
            return response
        if isinstance(request, GenerateRequest):
            tally.sent = len(cloud.encode_generate(request))
            response = cloud.generate(request)
        else:
            tally.sent = len(cloud.encode(request))
            response = cloud.verify(request)
        tally.received = len(response.model_dump_json().encode())
        return response


def _scored(
    scores: DraftScores, tokens: Sequence[int]
) -> fusion.Scored[tuple[list[int], list[float]]]:
    """The cloud's scores of the first ``len(tokens)`` draft tokens, in the judge's shape. A
    token is the cloud's argmax when no candidate there scores higher."""
    k = len(tokens)
    lp = torch.tensor(
        [-math.inf if v is None else v for v in scores.logprobs[:k]], dtype=torch.float64
    )
    best = torch.tensor([top.logprobs[0] for top in scores.top_k[:k]], dtype=torch.float64)

    def candidates(i: int) -> tuple[list[int], list[float]]:
        top = scores.top_k[i]
        return list(top.ids or []), list(top.logprobs)

    return fusion.Scored(lp_llm=lp, is_argmax=lp >= best, top_k=candidates)


def _transmit(
    cloud: CloudVerifier, request: VerifyRequest | GenerateRequest, wire: bytes
) -> VerifyResponse | GenerateResponse:
    if isinstance(request, GenerateRequest):
        return cloud.transmit_generate(request, wire)
    return cloud.transmit(request, wire)


@dataclass
class _Tally:
    """The bytes of one exchange so far (a failed send still counts what left)."""

    start: float
    sent: int = 0
    received: int = 0

    def exchange(self, now: float) -> Exchange:
        return Exchange(self.sent, self.received, now - self.start)


#: Hex digits to letters: an id with no digit runs, so no detector can read it as a number.
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")


def request_id() -> str:
    """A random request id of 32 letters (128 bits), with no digit a card or phone detector
    could take for private data (a hex uuid holds a Luhn-valid 13-19 digit run about 0.2% of the
    time, and the guard would then refuse the whole payload)."""
    return secrets.token_hex(16).translate(_HEX_TO_LETTERS)
