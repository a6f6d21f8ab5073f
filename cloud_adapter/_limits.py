"""``ServerLimits``: what one request may cost the reference server (no server imports here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServerLimits"]


class ServerLimits(BaseModel):
    """Bounds on what one request may cost the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    max_tokens: int = Field(
        default=8192,
        ge=16,
        description="Most tokens (prompt + prefix + draft) one request may ask the model to read.",
    )
    max_logprobs: int = Field(
        default=20, ge=0, le=1000, description="Largest logprobs / prompt_logprobs N."
    )
    max_completion_tokens: int = Field(
        default=4096, ge=0, le=32_768, description="Largest max_tokens on /v1/completions."
    )
    max_batch: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Most prompts in one /v1/completions request; their tokens (each prompt "
        "plus max_tokens) count together against max_tokens.",
    )
    logprob_rows: int = Field(
        default=64,
        ge=1,
        le=8192,
        description="Prompt positions scored per pass when a request asks for the "
        "log-probabilities of its whole prompt: bounds the memory of one pass to this many "
        "rows of the vocabulary.",
    )
    max_new_tokens: int = Field(
        default=4096, ge=1, le=32_768, description="Largest max_new_tokens on /v1/generate."
    )
    generate_timeout_s: float = Field(
        default=600.0, gt=0, le=3600, description="Seconds a /v1/generate request may take."
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds a request may wait and run (504 after)."
    )
    max_concurrency: int | None = Field(
        default=64, ge=1, description="Open connections served at once (503 beyond)."
    )
