"""Test doubles for the gateway: a device model that starts every answer with the canary its
private context holds, and a cloud side that keeps the exact bytes it receives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from specsteer.backends import ModelBackend, TransformersBackend
from specsteer.cloud_adapter import InProcessVerifier, VerifyRequest, VerifyResponse
from specsteer.testing import TINY_WORDS, tiny_backend

CANARIES = {"alice": "canary4h8s2d", "bob": "canary9q3z7w"}
#: The fact told in one session and used in the next (tests/gateway/session.py).
SESSION_CANARY = "canary6m1x8v"
WORDS = (*TINY_WORDS, "locker", "code", *CANARIES.values(), SESSION_CANARY)


def memory_of(user: str) -> str:
    """The private memory planted for ``user``."""
    return f"my locker code is {CANARIES[user]} and i keep it near the garden door"


class EchoFirst(ModelBackend):
    """A device model that writes, as the first token of its answer, the first canary it finds
    in its prompt (so a canary in the private context shows in the answer); otherwise, and
    after that first token, it is the base model. It goes through the real backend seam."""

    def __init__(self, base: TransformersBackend, canaries: Sequence[str]) -> None:
        self.base = base
        self.name = f"echo-{base.name}"
        self.canary_ids = [base.encode(c)[0] for c in canaries]
        probe = [{"role": "user", "content": "x"}]
        with_gen = base.encode_chat(probe, add_generation_prompt=True)
        without = base.encode_chat(probe, add_generation_prompt=False)
        self.marker = with_gen[len(without) :]
        self.prompts: list[str] = []  # every chat it was asked to encode (private views too)

    @property
    def vocab_size(self) -> int:
        return self.base.vocab_size

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self.base.eos_token_ids

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        prev, base_cache = cache if cache is not None else ([], None)
        logits, base_cache = self.base.forward(ids, base_cache)
        logits = logits.clone()
        seq = [*prev, *ids]
        for i in range(len(ids)):
            forced = self._first_token(seq[: len(prev) + i + 1])
            if forced is not None:
                logits[i] = logits[i] * 0.0
                logits[i, forced] = 30.0
        return logits, (seq, base_cache)

    def crop(self, cache: Any, length: int) -> Any | None:
        seq, base_cache = cache
        cropped = self.base.crop(base_cache, length)
        return None if cropped is None else (seq[:length], cropped)

    def _first_token(self, seq: list[int]) -> int | None:
        n = len(self.marker)
        if seq[-n:] != self.marker:
            return None  # only the answer's first position
        return next((c for c in self.canary_ids if c in seq), None)

    def encode_chat(self, messages: Any, *, add_generation_prompt: bool = True) -> list[int]:
        self.prompts.append("\n".join(m["content"] for m in messages))
        return self.base.encode_chat(messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.base.encode(text)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.base.decode(ids, skip_special_tokens=skip_special_tokens)


class Spy(InProcessVerifier):
    """The cloud side: keeps the exact request bytes it receives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[bytes] = []

    def transmit(self, request: VerifyRequest, wire: bytes) -> VerifyResponse:
        self.received.append(wire)
        return super().transmit(request, wire)


def echo_models() -> tuple[EchoFirst, Spy]:
    """The device double over a tiny model, and a tiny cloud model behind the spy."""
    device = EchoFirst(tiny_backend(0, words=WORDS), list(CANARIES.values()))
    return device, Spy(tiny_backend(1, words=WORDS))
