"""The wire protocol between device and cloud (DESIGN section 4).

Stateless: every request carries all it needs, so any replica can serve it. Nothing but these
types leaves the device. Every model forbids unknown fields, so a payload with an extra field
(say, a private context someone tried to smuggle in) fails validation instead of being ignored.

Two modes share one shape:

* token-id mode (device and cloud share a tokenizer): ``prefix`` and ``draft`` are
  :class:`TokenIds`, the response's top-k carries ids;
* cross-vocabulary mode (different tokenizers): ``prefix`` and ``draft`` are :class:`Text`; the
  draft's ``offsets`` mark the end of each device token, the response's top-k carries strings.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from specsteer import fusion
from specsteer.fusion import Processing

__all__ = [
    "PROTOCOL_VERSION",
    "ChatMessage",
    "DraftScores",
    "GenerateParams",
    "GenerateRequest",
    "GenerateResponse",
    "GenerateUsage",
    "Receipt",
    "Text",
    "TokenIds",
    "TopK",
    "Usage",
    "VerifyParams",
    "VerifyRequest",
    "VerifyResponse",
]

PROTOCOL_VERSION: Literal[1] = 1

T = TypeVar("T")

#: Largest number of draft units in one request; bounds the cloud's work per call.
MAX_DRAFT = 64
#: Largest top-k the cloud returns.
MAX_TOP_K = 1000
#: The most draws a verify response carries (see ``VerifyParams.samples``).
MAX_SAMPLES = 64
#: Most tokens one generate request may ask for.
MAX_NEW_TOKENS = 32_768


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ChatMessage(_Wire):
    """One public chat message. The private context is never one of these."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class TokenIds(_Wire):
    """A span as token ids of a tokenizer both sides share."""

    kind: Literal["ids"] = "ids"
    ids: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list, max_length=1_000_000)


class Text(_Wire):
    """A span as text (cross-vocabulary mode).

    ``offsets`` (drafts only) are the character offsets where each draft unit ends, strictly
    increasing, the last equal to ``len(text)``; empty for a prefix. A unit is one device token,
    or a few that only together complete a character (partial UTF-8). ``eos`` (drafts only) adds
    one more unit after the text: the device ends its answer there.
    """

    kind: Literal["text"] = "text"
    text: str = Field(default="", max_length=4_000_000)
    offsets: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, max_length=MAX_DRAFT)
    eos: bool = False

    @model_validator(mode="after")
    def _check_offsets(self) -> Text:
        prev = 0
        for off in self.offsets:
            if off <= prev:
                raise ValueError("offsets must be strictly increasing and positive")
            prev = off
        if self.offsets and self.offsets[-1] != len(self.text):
            raise ValueError("the last offset must equal len(text)")
        return self


Span = Annotated[TokenIds | Text, Field(discriminator="kind")]


class _Sampling(_Wire):
    """What both kinds of parameters share: the logit processing, finite numbers."""

    if TYPE_CHECKING:  # declared by each subclass, in its own field order
        temperature: float
        repetition_penalty: float
        no_repeat_ngram_size: int

    @property
    def processing(self) -> Processing:
        """The logit processing the device asked for, applied to the cloud model's scores."""
        return Processing(
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
        )

    @field_validator("lam", "temperature", "repetition_penalty", check_fields=False)
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v


class VerifyParams(_Sampling):
    """How the cloud runs the ratio test. All public; none depends on the private context."""

    lam: float = Field(default=0.5, ge=0.0, le=1e30, description="Acceptance threshold lambda.")
    top_k: int = Field(default=20, ge=1, le=MAX_TOP_K, description="Size of the recovery support.")
    greedy: bool = Field(default=True, description="Deterministic acceptance and recovery.")
    temperature: float = Field(default=1.0, gt=0.0, le=100.0)
    repetition_penalty: float = Field(
        default=1.0,
        ge=1.0,
        le=10.0,
        description="Penalty on tokens already in the answer (prefix and draft), never the prompt.",
    )
    no_repeat_ngram_size: int = Field(
        default=0, ge=0, le=16, description="Rule out tokens that repeat an n-gram of the answer."
    )
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="Seed for u_i draws.")
    target: Literal["fused", "llm"] = Field(
        default="fused",
        description="'fused': SpecSteer ratio test; 'llm': standard speculative decoding.",
    )
    samples: int = Field(
        default=0,
        ge=0,
        le=MAX_SAMPLES,
        description="Draws from the cloud's whole distribution at the position the verdict "
        "names, returned beside the top-k: with them the device samples standard speculative "
        "decoding's correction exactly (0: none).",
    )
    verdict: Literal["cloud", "device"] = Field(
        default="cloud",
        description="'cloud': the cloud judges the draft and returns the top-k where it failed; "
        "'device' (token ids, no draws): the cloud returns its scores of every draft position "
        "(the response's scores) and the device judges, so the request carries no "
        "ctxfree_logprobs.",
    )

    @property
    def uses_argmax(self) -> bool:
        """Greedy standard speculative decoding: decided by the cloud's argmax, no ``P_S0``."""
        return fusion.uses_argmax(self.target, self.greedy)

    def generator(self) -> torch.Generator | None:
        """The source of the ``u_i`` draws: seeded from ``seed``, or ``None`` (unseeded)."""
        return torch.Generator().manual_seed(self.seed) if self.seed is not None else None

    def judge(self, scored: fusion.Scored[T], lp_ctxfree: torch.Tensor | None) -> fusion.Verdict[T]:
        """:func:`specsteer.fusion.judge` with these parameters (a fresh generator per call).

        Args:
            scored: the cloud's scores of the draft, one entry per item.
            lp_ctxfree: ``[U]`` log P_S0 of each draft unit, as the request carries them.
        """
        return fusion.judge(
            scored,
            lp_ctxfree,
            lam=self.lam,
            greedy=self.greedy,
            target=self.target,
            generator=self.generator(),
        )


class VerifyRequest(_Wire):
    """Device -> cloud: verify a draft given only public data."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    request_id: str = Field(min_length=1, max_length=128)
    model: str = Field(default="default", max_length=256)
    prompt: list[ChatMessage] = Field(min_length=1, max_length=256)
    prefix: Span
    draft: Span
    ctxfree_logprobs: list[float] | None = Field(default=None, max_length=MAX_DRAFT)
    params: VerifyParams = Field(default_factory=VerifyParams)
    receipt_prev: str | None = Field(
        default=None,
        pattern=r"^[a-p]{64}$",
        description="Digest of the last receipt the device stored (the audit log's witness "
        "chain); filled by the egress guard.",
    )
    tokenizer: str | None = Field(
        default=None,
        pattern=r"^[a-p]{16,64}$",
        description="Token-id mode: a digest of the device's vocabulary, so a cloud model with "
        "another tokenizer refuses the ids instead of misreading them.",
    )

    @model_validator(mode="after")
    def _check(self) -> VerifyRequest:
        if self.prefix.kind != self.draft.kind:
            raise ValueError("prefix and draft must both be token ids or both be text")
        n = self.n_draft
        if n > MAX_DRAFT:
            raise ValueError(f"a draft holds at most {MAX_DRAFT} tokens")
        if isinstance(self.draft, Text) and self.draft.text and not self.draft.offsets:
            raise ValueError("a text draft needs offsets marking each device token")
        if isinstance(self.prefix, Text) and (self.prefix.offsets or self.prefix.eos):
            raise ValueError("a text prefix carries neither offsets nor eos")
        if self.params.verdict == "device":
            self._check_device_verdict()
        if self.ctxfree_logprobs is not None:
            if len(self.ctxfree_logprobs) != n:
                raise ValueError("ctxfree_logprobs must have one entry per draft token")
            for lp in self.ctxfree_logprobs:
                if not (math.isfinite(lp) and lp <= 1e-6):
                    raise ValueError("ctxfree_logprobs must be finite log-probabilities (<= 0)")
        return self

    def _check_device_verdict(self) -> None:
        if not isinstance(self.draft, TokenIds):
            raise ValueError(
                "verdict='device' needs token ids (text drafts are judged by the cloud)"
            )
        if self.ctxfree_logprobs is not None:
            raise ValueError("with verdict='device' the device judges: send no ctxfree_logprobs")
        if self.params.samples:
            raise ValueError("verdict='device' returns no draws: ask for samples=0")

    @property
    def n_draft(self) -> int:
        """Number of draft units (device tokens)."""
        if isinstance(self.draft, TokenIds):
            return len(self.draft.ids)
        return len(self.draft.offsets) + int(self.draft.eos)


class TopK(_Wire):
    """The cloud's top-k next tokens at the first rejected position, best first."""

    ids: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, max_length=MAX_TOP_K)
    strings: list[str] | None = Field(default=None, max_length=MAX_TOP_K)
    logprobs: list[float] = Field(max_length=MAX_TOP_K)

    @model_validator(mode="after")
    def _check(self) -> TopK:
        if (self.ids is None) == (self.strings is None):
            raise ValueError("top_k carries either ids or strings")
        n = len(self.ids if self.ids is not None else self.strings or [])
        if n != len(self.logprobs) or n == 0:
            raise ValueError("top_k needs one logprob per candidate, at least one candidate")
        for lp in self.logprobs:
            if not (math.isfinite(lp) and lp <= 1e-6):
                raise ValueError("top_k logprobs must be finite log-probabilities (<= 0)")
        return self


class Samples(_Wire):
    """Independent draws from the cloud's whole distribution at one position, in draw order
    (a token may repeat), each with its log-probability."""

    ids: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=MAX_SAMPLES)
    logprobs: list[float] = Field(min_length=1, max_length=MAX_SAMPLES)

    @model_validator(mode="after")
    def _check(self) -> Samples:
        if len(self.ids) != len(self.logprobs):
            raise ValueError("samples need one logprob per draw")
        for lp in self.logprobs:
            if not (math.isfinite(lp) and lp <= 1e-6):
                raise ValueError("sample logprobs must be finite log-probabilities (<= 0)")
        return self


class DraftScores(_Wire):
    """The cloud's scores of every draft position, for a device that judges (``verdict='device'``).

    ``logprobs[i]``: log P_L of draft token ``i`` after the logit processing, ``None`` where the
    processing rules it out; ``top_k[i]``: the cloud's candidates at position ``i``
    (``i = K``: after the whole draft, the bonus position).
    """

    logprobs: list[float | None] = Field(max_length=MAX_DRAFT)
    top_k: list[TopK] = Field(min_length=1, max_length=MAX_DRAFT + 1)

    @classmethod
    def of(cls, scored: fusion.Scored[tuple[list[int], list[float]]]) -> DraftScores:
        """The scores of a token-id draft, from the judge's shape (every position's top-k)."""
        k = scored.lp_llm.shape[0]
        tops = [TopK(ids=ids, logprobs=lps) for ids, lps in map(scored.top_k, range(k + 1))]
        logprobs = [min(0.0, v) if math.isfinite(v) else None for v in scored.lp_llm.tolist()]
        return cls(logprobs=logprobs, top_k=tops)

    @model_validator(mode="after")
    def _check(self) -> DraftScores:
        if len(self.top_k) != len(self.logprobs) + 1:
            raise ValueError("scores need a top-k at every draft position and after the draft")
        for lp in self.logprobs:
            if lp is not None and not (math.isfinite(lp) and lp <= 1e-6):
                raise ValueError("draft logprobs must be finite log-probabilities (<= 0) or null")
        return self


class Usage(_Wire):
    """What the cloud spent on the request."""

    server_ms: float = Field(default=0.0, ge=0.0)
    tokens_scored: int = Field(default=0, ge=0)


class Receipt(_Wire):
    """The server's signed statement of the exact bytes it received (the audit log's witness)."""

    v: Literal[1] = 1
    key_id: str = Field(max_length=64, description="sha256 of the server's public key, 16 hex.")
    key: str = Field(max_length=128, description="The server's Ed25519 public key, base64.")
    seq: int = Field(ge=1, description="The server's receipt counter.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the request body received.")
    size: int = Field(ge=0)
    prev: str = Field(max_length=64, description="The request's receipt_prev, or empty.")
    sig: str = Field(max_length=128, description="Ed25519 over the other fields, base64.")


class VerifyResponse(_Wire):
    """Cloud -> device: how many draft tokens passed, and the top-k where the first one failed."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    request_id: str = Field(min_length=1, max_length=128)
    n_accepted: int = Field(ge=0, le=MAX_DRAFT)
    top_k: TopK
    judged: int | None = Field(
        default=None,
        ge=0,
        le=MAX_DRAFT + 1,
        description="Text mode: the draft units the verdict read, through the end of the "
        "segment it rejected (a segment may span several units); None: not said.",
    )
    samples: Samples | None = Field(
        default=None,
        description="Independent draws from the cloud's whole distribution at position "
        "n_accepted, when the request asked for them (params.samples).",
    )
    scores: DraftScores | None = Field(
        default=None,
        description="With params.verdict='device': the cloud's scores of every draft position; "
        "n_accepted is then 0 and top_k the candidates at the first position, until the device "
        "judges.",
    )
    usage: Usage = Field(default_factory=Usage)
    receipt: Receipt | None = Field(default=None, description="Signed by the server.")

    @classmethod
    def unjudged(cls, request_id: str, scores: DraftScores, usage: Usage) -> VerifyResponse:
        """The answer to a device-judged request: ``scores``, and no verdict yet."""
        return cls(
            request_id=request_id, n_accepted=0, top_k=scores.top_k[0], scores=scores, usage=usage
        )


class GenerateParams(_Sampling):
    """How the cloud samples its own answer (``cloud_only``): the device's decoding settings."""

    greedy: bool = Field(default=True, description="Argmax at every step.")
    temperature: float = Field(default=1.0, gt=0.0, le=100.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus size for draws.")
    repetition_penalty: float = Field(
        default=1.0, ge=1.0, le=10.0, description="Penalty on tokens already in the answer."
    )
    no_repeat_ngram_size: int = Field(
        default=0, ge=0, le=16, description="Rule out tokens that repeat an n-gram of the answer."
    )
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="Seed for the draws.")
    ignore_eos: bool = Field(
        default=False, description="Rule out the end tokens: the answer runs to max_new_tokens."
    )


class GenerateRequest(_Wire):
    """Device -> cloud: write an answer to the public prompt with the cloud model alone."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    request_id: str = Field(min_length=1, max_length=128)
    model: str = Field(default="default", max_length=256)
    prompt: list[ChatMessage] = Field(min_length=1, max_length=256)
    max_new_tokens: int = Field(ge=1, le=MAX_NEW_TOKENS)
    params: GenerateParams = Field(default_factory=GenerateParams)
    receipt_prev: str | None = Field(
        default=None,
        pattern=r"^[a-p]{64}$",
        description="Digest of the last receipt the device stored (the audit log's witness "
        "chain); filled by the egress guard.",
    )
    tokenizer: str | None = Field(
        default=None,
        pattern=r"^[a-p]{16,64}$",
        description="A vocabulary digest the device can read: the answer carries token ids "
        "only when it names the cloud model's own vocabulary.",
    )


class GenerateUsage(_Wire):
    """What the cloud spent on a generate request."""

    server_ms: float = Field(default=0.0, ge=0.0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class GenerateResponse(_Wire):
    """Cloud -> device: the cloud model's answer."""

    protocol_version: Literal[1] = PROTOCOL_VERSION
    request_id: str = Field(min_length=1, max_length=128)
    text: str = Field(max_length=4_000_000, description="The answer, without the end token.")
    token_ids: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        max_length=MAX_NEW_TOKENS,
        description="The answer's token ids (ending with the end token when finish_reason is "
        "'eos'), when the request's tokenizer digest named the cloud model's vocabulary.",
    )
    finish_reason: Literal["eos", "length"]
    usage: GenerateUsage = Field(default_factory=GenerateUsage)
    receipt: Receipt | None = Field(default=None, description="Signed by the server.")
