"""An answer's opening without a refusal, for personal writing.

The embedded models are code-tuned: asked for a post, a review or a note in some phrasings, the
device model opens with "I'm sorry, but I can't assist with that." and SpecSteer keeps it. Before
such a request is answered, :func:`opening_without_refusal` reads the device model's greedy
opening on the private prompt; when it starts a refusal ("I'm sorry", "Sorry", "As an AI",
"I can't", "Unfortunately"), the token that made it one is ruled out at its position and the
model's next choice is taken ("I'm going to Ha Long Bay..."). The decoder then starts the answer
with those few tokens. An opening that refuses nothing is left alone: the answer is then the
one the model writes without this step. In the rounds after it, :class:`RefusalGuard` keeps the
same watch over the text's first words, where the cloud's recovery can lead to a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from specsteer._guards import PhraseGuard
from specsteer.backends._base import KVStream

__all__ = [
    "REFUSAL_OPENING",
    "RefusalGuard",
    "ai_guard",
    "is_refusal",
    "opening_without_refusal",
]

#: The start of a refusal (after an optional greeting line): "I'm sorry", "I am so sorry",
#: "Sorry", "I can't", "I cannot", "I'm unable", "As an AI", "Unfortunately".
REFUSAL_OPENING: Final = re.compile(
    r"^\s*(?:(?:hi|hey|hello|dear)\b[^\n]*\n+\s*)?"
    r"(?:I\s*(?:'m|’m|\s+am)\s+(?:\w+\s+)?sorry\b|sorry\b|"
    r"I\s*(?:can(?:no|'|’)t|cannot|(?:'m|’m|\s+am)\s+(?:unable|not\s+able))\b|"
    r"as\s+an\s+ai\b|unfortunately\b)",
    re.IGNORECASE,
)


_REFUSAL = re.compile(
    r"\b(?:I|we)\s*(?:'m|’m|am|are)?\s*(?:sorry|afraid)?[^.!?\n]{0,40}?\b"
    r"(?:can(?:no|'|’)t|can\s+not|am\s+unable\s+to|'m\s+unable\s+to|am\s+not\s+able\s+to|"
    r"'m\s+not\s+able\s+to|won(?:'|’)t\s+be\s+able\s+to|will\s+not\s+be\s+able\s+to)\s+"
    r"(?:assist|help|provide|fulfil+|comply|create|generate|write|complete)\b"
    r"(?:\s+(?:you\s+)?with)?\s+(?:that|this|it|your|such|the\s+request|requests?)\b",
    re.IGNORECASE,
)
_AS_AN_AI = re.compile(r"\bas an ai\b", re.IGNORECASE)


def is_refusal(answer: str) -> bool:
    """Whether the answer declines the request instead of doing it.

    True when one of its first two sentences (a greeting line such as "Hi Yasmin," counts as
    one) says it cannot assist, help, provide, fulfil, comply, create, generate, write or
    complete that / this / it / your request ("I'm sorry, but I can't assist with that."), or
    the answer speaks "as an AI". An apology inside a personal message ("Sorry, I can't make it
    on Saturday", "I can't help smiling") is not a refusal.
    """
    opening = [s for s in re.split(r"(?<=[.!?])\s+|\n", answer.strip()) if s.strip()][:2]
    return any(_REFUSAL.search(s) for s in opening) or _AS_AN_AI.search(answer) is not None


def opening_without_refusal(
    stream: KVStream,
    decode: Callable[[Sequence[int]], str],
    prompt_ids: Sequence[int],
    eos: frozenset[int],
    *,
    after: int = 2,
    tries: int = 8,
) -> list[int]:
    """The device's greedy opening with its refusal taken out; ``[]`` when it refuses nothing.

    Tokens are read one at a time; each time the text so far starts a refusal, its last token is
    ruled out at that position and the next-best is read instead. The opening ends ``after``
    tokens past the last token ruled out, so the answer is set on its way. Reading stops as soon
    as the text can no longer start a refusal ("I hope", "Dear Lena, I'm so glad").

    Args:
        stream: the device model's KV stream of the private view.
        decode: the device tokenizer's ``decode``.
        prompt_ids: the private prompt, as device tokens.
        eos: the device model's end tokens (never part of an opening).
        after: tokens kept past the last one ruled out.
        tries: the most tokens ruled out; past it, ``[]`` (the answer is left to the model).
    """
    out: list[int] = []
    banned: dict[int, set[int]] = {}
    end = 0  # the opening's length once a refusal was taken out
    while not banned or len(out) < end:
        # Row 0 is kept: the drafter's first call reads it as computed here, so an answer
        # whose opening refuses nothing is the one it would be without this step.
        row = stream.logits([*prompt_ids, *out], keep_row=not out)[-1].clone()
        for tok in banned.get(len(out), ()):
            row[tok] = float("-inf")
        tok = int(row.argmax())
        if tok in eos:
            return out if banned else []
        out.append(tok)
        text = decode(out)
        if REFUSAL_OPENING.match(text):
            if not _may_rule_out(stream, decode, prompt_ids, out, eos, banned, tries):
                return []  # "I'm sorry I missed your party": an apology; or out of tries
            banned.setdefault(len(out) - 1, set()).add(out.pop())
            end = len(out) + 1 + after
        elif not banned and _settled(text, len(out)):
            return []
    return out


@dataclass
class RefusalGuard:
    """Keeps a text written as the user from turning into a refusal in its first words after
    an opening that refused nothing: in SpecSteer a cloud's recovery can lead there ("Hi
    Greta,\n\nI'm really sorry, but I can't assist with that.").

    Before the tokens of a round are appended, :meth:`cut` finds the one that makes the answer
    start a refusal (:data:`REFUSAL_OPENING`, confirmed by the device's greedy text after it);
    the round keeps what comes before it, and the token is ruled out at its position
    (:attr:`banned`: the drafter and the recovery read it), as the opening check does.

    Args:
        stream: the device model's KV stream of the private view.
        decode: the device tokenizer's ``decode``.
        prompt_ids: the private prompt, as device tokens.
        eos: the device model's end tokens.
        window: answer tokens within which a refusal can start (past it nothing is read).
        tries: the most tokens ruled out.
    """

    stream: KVStream
    decode: Callable[[Sequence[int]], str]
    prompt_ids: Sequence[int]
    eos: frozenset[int]
    window: int = 32
    tries: int = 8
    banned: dict[int, set[int]] = field(default_factory=dict)
    ends: set[int] = field(default_factory=set)
    done: bool = False

    def cut(self, before: Sequence[int], new: Sequence[int]) -> int | None:
        """The index in ``new`` of the token that makes ``before + new`` start a refusal
        (now ruled out at its position), or ``None``."""
        if self.done or len(before) >= self.window or not new:
            return None
        if REFUSAL_OPENING.match(self.decode(before)):
            self.done = True  # there already: nothing of it can be taken back
            return None
        for i in range(len(new)):
            ids = [*before, *new[: i + 1]]
            if not REFUSAL_OPENING.match(self.decode(ids)):
                continue
            args = (self.stream, self.decode, self.prompt_ids, ids, self.eos)
            if not _may_rule_out(*args, self.banned, self.tries):
                self.done = True  # an apology ("I'm sorry I missed it"), or out of tries
                return None
            self.banned.setdefault(len(before) + i, set()).add(new[i])
            return i
        return None


def _may_rule_out(
    stream: KVStream,
    decode: Callable[[Sequence[int]], str],
    prompt_ids: Sequence[int],
    answer: list[int],
    eos: frozenset[int],
    banned: dict[int, set[int]],
    tries: int,
) -> bool:
    """Whether the last token of ``answer``, which starts a refusal, may be ruled out: fewer
    than ``tries`` tokens are ruled out in ``banned``, and the text goes on to decline the
    request (:func:`_refuses`), not to apologise."""
    used = sum(map(len, banned.values()))
    return used < tries and _refuses(stream, decode, prompt_ids, answer, eos)


def _refuses(
    stream: KVStream,
    decode: Callable[[Sequence[int]], str],
    prompt_ids: Sequence[int],
    answer: list[int],
    eos: frozenset[int],
) -> bool:
    """Whether the greedy text after ``answer`` goes on to decline the request
    (:func:`is_refusal`), read up to :data:`_LOOK` tokens ahead."""
    ahead = list(answer)
    for _ in range(_LOOK):
        tok = int(stream.logits([*prompt_ids, *ahead])[-1].argmax())
        if tok in eos:
            break
        ahead.append(tok)
        if is_refusal(decode(ahead)):
            return True
    return False


#: "As an AI", the disclaimer a text written as the user never makes.
_AS_AN_AI_PHRASE: Final = re.compile(r"\s*as\s+an\s+ai\b", re.IGNORECASE)
_AS: Final = re.compile(r"\s*as", re.IGNORECASE)
#: Where a sentence, a line or a greeting's clause starts.
_CLAUSE_START: Final = re.compile(r"(?:^|[.!?,:;]|\n)\s*$")


def ai_guard(
    greedy: Callable[[Sequence[int]], int],
    decode: Callable[[Sequence[int]], str],
    eos: frozenset[int],
    *,
    tries: int = 8,
) -> PhraseGuard:
    """Keeps a text written as the user from speaking "as an AI" anywhere in it (a thank-you
    note went on "As an AI language model, I don't have the ability to physically interact
    with pets" after two sentences of thanks): an "As" starting a sentence or a clause that the
    text goes on to follow with "an AI" is ruled out at its position
    (:class:`~specsteer._guards.PhraseGuard`; the arguments are its own)."""
    return PhraseGuard(greedy, decode, eos, _starts_as, _AS_AN_AI_PHRASE, tries=tries)


def _starts_as(token: str, before: Callable[[], str]) -> bool:
    return _AS.fullmatch(token) is not None and _CLAUSE_START.search(before()) is not None


_GREETING: Final = re.compile(r"^\s*(?:hi|hey|hello|dear)\b[^\n]*(?:\n|$)", re.IGNORECASE)
#: Words a refusal opens with, and words that may come next in one ("I am so", "As an").
_FIRST: Final = frozenset({"i", "i'm", "i’m", "sorry", "as", "unfortunately"})
_NEXT: Final = frozenset(
    {
        "am",
        "so",
        "very",
        "really",
        "truly",
        "can",
        "cannot",
        "can't",
        "can’t",
        "unable",
        "an",
        "not",
    }
)
#: Tokens read without a refusal before the opening is left to the model.
_LOOK: Final = 12


def _settled(text: str, read: int) -> bool:
    """Whether ``text`` (``read`` tokens), not a refusal's start, can no longer become one."""
    if read >= _LOOK:
        return True
    greeting = _GREETING.match(text)
    if greeting is not None and not greeting.group(0).endswith("\n"):
        return False  # still on what may be a greeting line
    body = text[greeting.end() :] if greeting is not None else text
    words = re.findall(r"[\w'’]+", body.casefold())
    if not words:
        return False
    if words[0] not in _FIRST or len(words) >= 4:
        return True
    return len(words) >= 2 and words[-1] not in _NEXT
