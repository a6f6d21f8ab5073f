"""Test doubles that ship with the library: tiny models built in code, no downloads.

``tiny_backend()`` builds a 2-layer, 64-wide Llama with a small word-level tokenizer and a chat
template, so the whole engine runs in milliseconds in tests and examples. Two calls with the same
seed give identical models. ``BigramBackend`` is a model whose next-token logits are a table row
chosen by the last token: hand-built logits with exact expected tokens, through the real seam.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

import torch

from specsteer.backends._base import Messages, ModelBackend
from specsteer.backends._transformers import TransformersBackend

__all__ = ["TINY_WORDS", "BigramBackend", "tiny_backend", "tiny_tokenizer"]

#: The tiny tokenizer's ordinary words (plus special tokens); enough for readable test prompts.
TINY_WORDS: tuple[str, ...] = tuple(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "it",
        "my",
        "your",
        "his",
        "her",
        "our",
        "their",
        "me",
        "him",
        "us",
        "them",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "when",
        "where",
        "why",
        "how",
        "yes",
        "no",
        "not",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "will",
        "would",
        "can",
        "could",
        "should",
        "may",
        "might",
        "must",
        "go",
        "goes",
        "went",
        "come",
        "came",
        "get",
        "got",
        "make",
        "made",
        "say",
        "said",
        "see",
        "saw",
        "know",
        "knew",
        "think",
        "like",
        "love",
        "hate",
        "want",
        "need",
        "use",
        "find",
        "give",
        "tell",
        "ask",
        "work",
        "call",
        "try",
        "feel",
        "leave",
        "put",
        "mean",
        "keep",
        "let",
        "begin",
        "seem",
        "help",
        "show",
        "hear",
        "play",
        "run",
        "move",
        "live",
        "believe",
        "bring",
        "happen",
        "write",
        "sit",
        "stand",
        "lose",
        "pay",
        "meet",
        "include",
        "continue",
        "set",
        "learn",
        "change",
        "lead",
        "understand",
        "watch",
        "follow",
        "stop",
        "create",
        "speak",
        "read",
        "spend",
        "grow",
        "open",
        "walk",
        "win",
        "teach",
        "offer",
        "remember",
        "consider",
        "appear",
        "buy",
        "serve",
        "die",
        "send",
        "build",
        "stay",
        "fall",
        "cut",
        "reach",
        "kill",
        "raise",
        "pass",
        "sell",
        "decide",
        "return",
        "explain",
        "hope",
        "develop",
        "carry",
        "break",
        "receive",
        "agree",
        "support",
        "hit",
        "produce",
        "eat",
        "cover",
        "catch",
        "draw",
        "choose",
        "cause",
        "point",
        "listen",
        "drink",
        "cook",
        "swim",
        "travel",
        "visit",
        "book",
        "trip",
        "flight",
        "hotel",
        "coffee",
        "tea",
        "dinner",
        "lunch",
        "breakfast",
        "friday",
        "monday",
        "sunday",
        "weekend",
        "morning",
        "evening",
        "night",
        "today",
        "tomorrow",
        "yesterday",
        "week",
        "month",
        "year",
        "time",
        "day",
        "name",
        "city",
        "paris",
        "london",
        "tokyo",
        "berlin",
        "rome",
        "home",
        "office",
        "doctor",
        "dentist",
        "meeting",
        "appointment",
        "birthday",
        "gift",
        "sister",
        "brother",
        "mother",
        "father",
        "friend",
        "dog",
        "cat",
        "garden",
        "music",
        "guitar",
        "piano",
        "run",
        "marathon",
        "vegan",
        "pizza",
        "pasta",
        "sushi",
        "salad",
        "allergy",
        "peanut",
        "reminder",
        "note",
        "plan",
        "schedule",
        "question",
        "answer",
        "private",
        "secret",
        "public",
        "context",
        "draft",
    ]
)
_SPECIAL = ("<pad>", "<unk>", "<s>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(
    words: tuple[str, ...] = TINY_WORDS, *, family: Literal["words", "pieces"] = "words"
) -> object:
    """A ``PreTrainedTokenizerFast`` with a chat template, built in code.

    Args:
        words: the ordinary words it can write.
        family: ``'words'``, one token per word; ``'pieces'``, each word cut into pieces of up
            to three characters (``dinner`` -> ``din ##ner``), a different tokenizer of the same
            text, for cross-vocabulary tests.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    if family == "pieces":
        for tok in _SPECIAL:
            vocab.setdefault(tok, len(vocab))
        for w in (*words, *".,!?'0123456789"):
            for i in range(0, len(w), 3):
                vocab.setdefault(w[i : i + 3] if i == 0 else "##" + w[i : i + 3], len(vocab))
        model: models.Model = models.WordPiece(
            vocab=vocab, unk_token="<unk>", max_input_chars_per_word=100
        )
    elif family == "words":
        for tok in (*_SPECIAL, *words, *".,!?'0123456789"):
            vocab.setdefault(tok, len(vocab))
        model = models.WordLevel(vocab=vocab, unk_token="<unk>")
    else:
        raise ValueError(f"family must be 'words' or 'pieces', not {family!r}")
    core = Tokenizer(model)
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|end|>",
        additional_special_tokens=list(_SPECIAL[4:]),
    )
    tok.chat_template = _TEMPLATE
    return tok


def tiny_backend(
    seed: int = 0,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    sharpness: float = 20.0,
    name: str | None = None,
    words: tuple[str, ...] = TINY_WORDS,
    family: Literal["words", "pieces"] = "words",
) -> TransformersBackend:
    """A tiny random Llama over :func:`tiny_tokenizer`, deterministic for a given ``seed``.

    Args:
        seed: weights are drawn from ``torch.Generator().manual_seed(seed)``.
        sharpness: scales the output layer so next-token distributions are peaked rather than
            near-uniform (clear argmaxes, as in a trained model).
        words: the tokenizer's ordinary words (see :func:`tiny_tokenizer`).
        family: the tokenizer family (see :func:`tiny_tokenizer`); models of different
            families need cross-vocabulary mode.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer(words, family=family)
    config = LlamaConfig(
        vocab_size=len(tok),  # type: ignore[arg-type]
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    fork = torch.random.fork_rng()
    with fork:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpness)
    model.generation_config.eos_token_id = 3
    return TransformersBackend(model, tok, name=name or f"tiny-{seed}")


class BigramBackend(ModelBackend):
    """A model whose logits after a token are one row of a table: ``table[last_token]``.

    Token 0 is the start token every chat renders to (the prompt's content is ignored), token 1
    ends an answer; ``words[i]`` is token ``i``'s text, and text is words joined by spaces.

    Args:
        table: ``[V, V]`` logits; row ``i`` follows token ``i``.
        words: the ``V`` tokens' texts (``words[0]`` and ``words[1]`` are special).
        name: the model's name.
    """

    def __init__(self, table: torch.Tensor, words: Sequence[str], *, name: str = "bigram") -> None:
        assert table.dim() == 2 and table.shape[0] == table.shape[1] == len(words) >= 2
        self.table = table.float()
        self.words = list(words)
        self.name = name

    @classmethod
    def from_chain(
        cls,
        words: Sequence[str],
        chain: Mapping[str, Mapping[str, float]],
        *,
        name: str = "bigram",
        floor: float = -20.0,
    ) -> Self:
        """A bigram model written as words: ``chain[a][b]`` is the logit of ``b`` after ``a``;
        anything unlisted gets ``floor``."""
        table = torch.full((len(words), len(words)), floor)
        for a, nexts in chain.items():
            for b, logit in nexts.items():
                table[words.index(a), words.index(b)] = logit
        return cls(table, words, name=name)

    @property
    def vocab_size(self) -> int:
        return int(self.table.shape[1])

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({1})

    def forward(self, ids: Sequence[int], cache: Any | None) -> tuple[torch.Tensor, Any]:
        return self.table[torch.tensor(list(ids), dtype=torch.long)], (cache or 0) + len(ids)

    def crop(self, cache: Any, length: int) -> Any | None:
        return length

    def encode_chat(self, messages: Messages, *, add_generation_prompt: bool = True) -> list[int]:
        return [0]

    def encode(self, text: str) -> list[int]:
        return [self.words.index(w) for w in text.split()]

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        skip = {0, 1} if skip_special_tokens else set()
        return " ".join(self.words[i] for i in ids if i not in skip)
