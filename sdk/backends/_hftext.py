"""The text half of a backend whose tokenizer is a Hugging Face tokenizer: chat rendering,
encoding, decoding, the vocabulary digest and the end tokens, written once for every such
backend."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from specsteer.backends._base import Messages

__all__ = ["HFTokenizerText"]


class HFTokenizerText:
    """Mixin for a :class:`ModelBackend` with a ``tokenizer`` attribute (a HF tokenizer), its
    logits width in ``_vocab`` and its end tokens in ``_eos``."""

    tokenizer: Any
    _vocab: int
    _eos: frozenset[int]
    _fingerprint: str | None = None

    @property
    def vocab_size(self) -> int:
        return self._vocab

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def end_token_id(self) -> int:
        eos = self.tokenizer.eos_token_id
        return int(eos) if eos in self._eos else min(self._eos)

    def tokenizer_fingerprint(self) -> str | None:
        if self._fingerprint is None:
            vocab = sorted(self.tokenizer.get_vocab().items())
            digest = hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:32]
            # Letters only (hex digit -> a..p): no run of digits for a PII detector to misread.
            self._fingerprint = digest.translate(
                str.maketrans("0123456789abcdef", "abcdefghijklmnop")
            )
        return self._fingerprint

    def encode_chat(self, messages: Messages, *, add_generation_prompt: bool = True) -> list[int]:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in msgs)
            if add_generation_prompt:
                text += "assistant:"
        return self.encode(str(text))

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]] | None:
        if not getattr(self.tokenizer, "is_fast", False):
            return None
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))
