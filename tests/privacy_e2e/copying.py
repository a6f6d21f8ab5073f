"""A device model that copies its private context: the worst case for leakage.

It runs a real backend for its logits and, whenever the private context is in its prompt, puts
almost all probability on the next token of that context, so its drafts repeat the user's private
notes verbatim. It goes through the real ``ModelBackend`` seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from specsteer.backends import ModelBackend, TransformersBackend


class CopyingBackend(ModelBackend):
    def __init__(self, base: TransformersBackend, script: str, boost: float = 30.0) -> None:
        self.base = base
        self.name = f"copying-{base.name}"
        self.script_text = script
        self.script = base.encode(script)
        self.boost = boost
        probe = [{"role": "user", "content": "x"}]
        with_gen = base.encode_chat(probe, add_generation_prompt=True)
        without = base.encode_chat(probe, add_generation_prompt=False)
        self.marker = with_gen[len(without) :] or with_gen[-1:]
        # A run from inside the script: its first token may merge differently in the template.
        self.anchor = self.script[1:5] if len(self.script) > 5 else self.script

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
            nxt = self._next(seq[: len(prev) + i + 1])
            if nxt is not None:
                logits[i] = logits[i] * 0.0
                logits[i, nxt] = self.boost
        return logits, (seq, base_cache)

    def crop(self, cache: Any, length: int) -> Any | None:
        seq, base_cache = cache
        cropped = self.base.crop(base_cache, length)
        return None if cropped is None else (seq[:length], cropped)

    def _next(self, seq: list[int]) -> int | None:
        if not _contains(seq, self.anchor):
            return None  # no private context in this view: behave like the base model
        at = _last(seq, self.marker)
        if at < 0:
            return None
        generated = len(seq) - (at + len(self.marker))
        if generated < len(self.script):
            return self.script[generated]
        return next(iter(sorted(self.eos_token_ids)))

    def encode_chat(self, messages: Any, *, add_generation_prompt: bool = True) -> list[int]:
        return self.base.encode_chat(messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.base.encode(text)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.base.decode(ids, skip_special_tokens=skip_special_tokens)


def _contains(seq: list[int], sub: list[int]) -> bool:
    n = len(sub)
    return any(seq[i : i + n] == sub for i in range(len(seq) - n + 1))


def _last(seq: list[int], sub: list[int]) -> int:
    n = len(sub)
    for i in range(len(seq) - n, -1, -1):
        if seq[i : i + n] == sub:
            return i
    return -1
