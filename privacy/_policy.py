"""What the egress guard does with each kind of finding."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_ACTIONS", "Action", "EgressPolicy"]

Action = Literal["block", "pseudonymize", "allow"]

#: Built-in actions. Verbatim private text and identifiers that are dangerous in any hands are
#: blocked; contact details are pseudonymized so the cloud can still refer to them.
DEFAULT_ACTIONS: dict[str, Action] = {
    "PRIVATE_TEXT": "block",
    "PRIVATE_TOKEN": "block",
    "CREDIT_CARD": "block",
    "IBAN_CODE": "block",
    "US_SSN": "block",
    "UK_NINO": "block",
    "EMAIL_ADDRESS": "pseudonymize",
    "PHONE_NUMBER": "pseudonymize",
    "IP_ADDRESS": "pseudonymize",
    "STREET_ADDRESS": "pseudonymize",
    "PERSON": "pseudonymize",
}

_ENTITY = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


#: The context-lift policy's default tau, in nats (docs/privacy.md, "What the cloud learns").
DEFAULT_MAX_CONTEXT_LIFT = 8.0


class EgressPolicy(BaseModel):
    """Per-entity actions for outbound text.

    ``block``: the span stays on the device (the engine emits it locally; the cloud sees a
    placeholder), and a payload that still carries it is refused. ``pseudonymize``: the span is
    replaced by a reversible placeholder such as ``[EMAIL_1]``; a payload carrying the raw value is
    refused too. ``allow``: sent as is, still counted and audited.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: dict[str, Action] = Field(
        default_factory=lambda: dict(DEFAULT_ACTIONS),
        description="Action per entity name (e.g. EMAIL_ADDRESS). Replaces the built-in table "
        "when given; merge with DEFAULT_ACTIONS to change a few.",
    )
    default: Action = Field(
        default="block", description="Action for an entity missing from `actions`."
    )
    overlap_n: int = Field(
        default=8, ge=2, le=64, description="Words per n-gram for verbatim private-text overlap."
    )
    overlap_min_short: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Private texts with at least this many words (and fewer than overlap_n) are "
        "matched whole; 0 disables.",
    )
    overlap_min_token_chars: int = Field(
        default=6,
        ge=0,
        le=256,
        description="Minimum length of a distinctive private token (letters and digits mixed, "
        "e.g. an order number, or a word no English dictionary lists); 0 disables.",
    )
    overlap_rare_words: bool = Field(
        default=True,
        description="Count private words missing from the English dictionary (surnames, "
        "streets, code words) as distinctive tokens.",
    )
    generated_fields: tuple[str, ...] = Field(
        default=("request_id", "tokenizer", "prefix.offsets", "draft.offsets", "receipt_prev"),
        description="Payload fields the protocol fills itself (request ids, the vocabulary "
        "digest, draft offsets, the link to the last receipt), as JSON paths. The guard does not scan them, so a generated id "
        "is never read as a card number and offsets are never decoded as token ids; a string "
        "there is skipped only while it has an id's shape (16+ letters a-p), else it is scanned. "
        "They are still audited byte for byte.",
    )

    max_context_lift: float | None = Field(
        default=DEFAULT_MAX_CONTEXT_LIFT,
        ge=0.0,
        description="The context-lift policy's tau, in nats: a draft token whose context lift "
        "(log P_S - log P_S0: how much more likely the private context made it) exceeds it does "
        "not leave the device; its round stays on the device from that token on, and so does a "
        "recovered token over it. None lets every token through. The default, 8, is where the "
        "attackers of docs/privacy.md fell to the cloud-alone baseline on the shipped set.",
    )
    context_lift_budget: float | None = Field(
        default=None,
        ge=0.0,
        description="The most positive context lift, in nats, that one answer may send in all; "
        "the first token that would overrun it stays on the device as above. None: no budget.",
    )

    @field_validator("actions")
    @classmethod
    def _entity_names(cls, v: dict[str, Action]) -> dict[str, Action]:
        for name in v:
            if not _ENTITY.fullmatch(name):
                raise ValueError(f"entity names are UPPER_SNAKE_CASE, got {name!r}")
        return v

    def action_for(self, entity: str) -> Action:
        """The action for ``entity``."""
        return self.actions.get(entity, self.default)
