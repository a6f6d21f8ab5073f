"""User-facing generation settings (pydantic, ``extra="forbid"``, env overrides ``SPECSTEER_*``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from specsteer._errors import ConfigurationError, summarize_validation
from specsteer._methods import METHOD_NAMES, METHODS
from specsteer.fusion import Processing

__all__ = ["GenerationConfig", "Method", "with_overrides"]

#: The longest draft a round may carry: the protocol's 64 less room to complete a character.
MAX_K = 56

#: A decoding method's name: one of :data:`specsteer._methods.METHOD_NAMES`.
Method = str


class GenerationConfig(BaseSettings):
    """How one generation runs. Every field can be overridden by ``SPECSTEER_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="SPECSTEER_",
        extra="forbid",
        validate_assignment=True,
        frozen=False,
        allow_inf_nan=False,  # a NaN is refused as not a number, not as out of range
    )

    method: Method = Field(
        default="specsteer",
        description="Decoding method: "
        + "; ".join(f"'{m.name}' ({m.summary})" for m in METHODS.values())
        + ".",
    )
    max_new_tokens: int = Field(default=128, ge=1, le=8192, description="Output length limit.")
    draft_tokens: int = Field(
        default=4,
        ge=1,
        le=MAX_K,
        description="K: tokens drafted on the device per round (the first round's, when adaptive).",
    )
    adaptive_draft: bool = Field(
        default=True,
        description=(
            "Grow K by 2 after a fully accepted round and shrink it by 1 after a rejection, "
            "within [1, max_draft_tokens]; False keeps K = draft_tokens."
        ),
    )
    max_draft_tokens: int = Field(
        default=12, ge=1, le=MAX_K, description="Upper bound of an adaptive K."
    )
    draft_confidence: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "End a draft early after a token the device drew with less than this probability "
            "(the rest would likely be rejected); 0 drafts K tokens every round."
        ),
    )
    recover_refusals: bool = Field(
        default=True,
        description=(
            "For a text written as the user (a message, a review, a post): when the device "
            "model's greedy opening declines the request (\"I'm sorry, but I can't assist with "
            'that."), rule out the token that made it a refusal and start the answer with the '
            "device's next choice, keep the verified rounds from turning the text's first "
            'words into one, and keep "As an AI" out of the whole text (device-side methods; a '
            "refusal of anything else is kept)."
        ),
    )
    end_recitals: bool = Field(
        default=True,
        description=(
            "For a text written as the user: end it before a sentence that would read out one "
            "of the user's notes when an earlier sentence already read out another (the device "
            "model lists its notes once the text is written: 'I spend far too much time at The "
            "Reading Room, my local café.' in a review of a desk fan); device-side methods."
        ),
    )
    keep_owner: bool = Field(
        default=True,
        description=(
            "For a text to a person: keep it from calling the reader's what the request calls "
            'the user\'s ("thank my neighbour for minding my pet" written as "thanks for '
            'minding your pet"): a "your" the text would follow with one of them is ruled out '
            "at its position, for the drafter and the recovery alike (device-side methods)."
        ),
    )
    sign_texts: bool = Field(
        default=True,
        description=(
            "End a text to a person with the user's sign-off (the persona's, \"Talk soon, "
            'Emre") when the text ends on its own with room for it within max_new_tokens and '
            "is not signed yet; the device adds it after the last round, so it never reaches "
            "the cloud (methods whose drafter reads the private context)."
        ),
    )
    pipeline: bool | None = Field(
        default=None,
        description=(
            "Draft the next round on the device while the cloud verifies this one (same tokens "
            "as the sequential loop; the speculative draft is dropped when the round is not "
            "accepted whole). None: pipeline unless the cloud's model computes on this "
            "machine's CPU (an in-process verifier, a reference server on a loopback address), "
            "where drafting ahead takes the cores the cloud's pass needs."
        ),
    )
    device_verdict: bool = Field(
        default=True,
        description=(
            "When pipelined, with token ids and a cloud that returns its scores of every draft "
            "position: send drafts unscored and judge them on the device, so the device's "
            "context-free scoring runs while the cloud verifies (same verdicts; off under a "
            "context-lift policy, which reads those scores before a draft leaves)."
        ),
    )
    lam: float = Field(
        default=0.5,
        ge=0.0,
        le=1e30,
        description="Acceptance threshold lambda; smaller accepts more (faster), 0 accepts all.",
    )
    beta: float = Field(
        default=1.0, ge=0.0, le=100.0, description="Steering strength of the private signal."
    )
    top_k: int = Field(default=20, ge=1, le=1000, description="Size of the recovery support.")
    temperature: float = Field(default=1.0, gt=0.0, le=100.0, description="Softmax temperature.")
    top_p: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description=(
            "Nucleus sampling: draws (drafts, recoveries, single-model methods) come from the "
            "smallest set of tokens holding this much probability; 1 keeps all. No effect when "
            "greedy."
        ),
    )
    repetition_penalty: float = Field(
        default=1.0,
        ge=1.0,
        le=10.0,
        description=(
            "Penalty on tokens already in the answer (the prompt is exempt), applied alike to the "
            "device's and the cloud's distributions; 1 switches it off."
        ),
    )
    no_repeat_ngram_size: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "Rule out any token that would repeat an n-gram of the answer, on both sides; "
            "0 switches it off."
        ),
    )
    greedy: bool = Field(default=True, description="Deterministic decoding (argmax everywhere).")
    seed: int | None = Field(
        default=None, ge=0, lt=2**63, description="Seed for all randomness; None draws one."
    )
    bonus_token: bool = Field(
        default=True,
        description="When every draft token passes, also take the token after them (K+1).",
    )
    judged_bonus: bool = Field(
        default=False,
        description=(
            "SpecSteer, after a draft that passed whole: keep the device's own next token when "
            "it passes the ratio test at the bonus position too, so the next draft, made while "
            "the cloud verified, holds more often; False (the paper's rule) steers every bonus "
            "token."
        ),
    )
    ignore_eos: bool = Field(
        default=False,
        description="Keep generating past end-of-sequence until max_new_tokens (benchmarks).",
    )
    min_new_tokens: int = Field(
        default=0,
        ge=0,
        description=(
            "Rule out the end of the answer before it holds this many tokens, in the device's "
            "drafts and in the recovery alike (device-side methods; the cloud writing alone, "
            "'cloud_only', is not held to it)."
        ),
    )
    ctxfree_source: Literal["device", "cloud"] = Field(
        default="device",
        description=(
            "Who computes the context-free draft probabilities P_S0: 'device' sends them "
            "(the cloud needs only its own model), 'cloud' hosts a copy of the public device model."
        ),
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHODS:
            raise ValueError(f"unknown method {value!r}; choose one of: {', '.join(METHOD_NAMES)}")
        return value

    @property
    def processing(self) -> Processing:
        """The logit processing these settings ask for (shared by device and cloud)."""
        return Processing(
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size,
        )


def with_overrides(config: GenerationConfig, overrides: Mapping[str, Any]) -> GenerationConfig:
    """``config`` with ``overrides`` set.

    Raises:
        ConfigurationError: an unknown setting or a value out of range, each named with what
            it takes.
    """
    if not overrides:
        return config
    try:
        return GenerationConfig.model_validate({**config.model_dump(), **overrides})
    except ValidationError as e:
        raise ConfigurationError(
            f"invalid generation setting: {summarize_validation(e, None, whole='settings')}"
        ) from None
