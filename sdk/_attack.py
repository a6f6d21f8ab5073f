"""What the cloud learns: attacks on exactly what the audit log says left the device.

For each answer of an evaluation run (:func:`specsteer.run_eval` with the payloads sealed in its
audit log), the attacker reads the payloads that answer sent -- the public prompt, the accepted
prefixes, the drafts -- and must pick the user's true private attribute (one of the example's
``facts``) among ``n`` candidates of the same kind: the fact and ``n - 1`` distractors, the
facts in the same place of the same task for the set's other users. Two attackers:

* :func:`string_attacker` -- a candidate that appears in what left (whole words, any case) is
  picked; among several, or none, one at random;
* :class:`ModelAttacker` -- a language model (the cloud's own is the natural one: it is what
  the cloud has) scores each candidate by how much what left raises its likelihood as "a fact
  about the user": ``log P(c | prompt, text that left) - log P(c | prompt)``. By Bayes' rule this
  ranks candidates as ``log P(text that left | c)`` does (for a model whose conditionals agree),
  at a fraction of the cost: what left is read once, each candidate is a few tokens.

Ties are broken at random (seeded), so an attacker that sees nothing is at chance, ``1/n``.

Canary exposure (Carlini et al., "The Secret Sharer"): a random secret of known entropy is
planted in a user's memories, the user asks for it, and the model attacker ranks it among the
whole space of secrets from what left; ``exposure = log2 |R| - log2 rank``, the rank estimated
from a sample of the space with a normal fit for the tail.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from specsteer import fusion
from specsteer._eval import EvalExample
from specsteer.backends._base import ModelBackend

__all__ = [
    "CANARY_SPACE",
    "AttackTrial",
    "CanarySpace",
    "ModelAttacker",
    "accuracy",
    "attack_trials",
    "candidates_for",
    "exposure",
    "observed_text",
    "string_attacker",
    "wilson",
]

Record = dict[str, Any]


# -- what left -----------------------------------------------------------------------------------


def observed_text(payloads: Sequence[bytes], decode: Callable[[Sequence[int]], str]) -> str:
    """The answer text the cloud read in one answer's payloads, in order.

    A verify request carries the accepted answer (``prefix``) and a draft; the last one's
    prefix and draft hold all that was accepted, and each earlier draft adds what the cloud saw
    and rejected. A ``cloud_only`` request carries the prompt alone (no answer text). Token ids
    are decoded with ``decode`` (the vocabulary they were sent in).
    """
    seen: list[str] = []
    for wire in payloads:
        doc = json.loads(wire)
        if not isinstance(doc, dict) or "draft" not in doc:
            continue
        prefix, draft = doc.get("prefix"), doc.get("draft")
        seen.append(_text_of([prefix, draft], decode))
        seen.append(_text_of([draft], decode))
    if not seen:
        return ""
    last = seen[-2]
    rejected = [d for d in seen[1::2] if d.strip() and d not in last]
    return "\n".join([last, *dict.fromkeys(rejected)]).strip()


def _text_of(parts: Sequence[object], decode: Callable[[Sequence[int]], str]) -> str:
    """The text of protocol parts read one after the other (token ids decoded together, so
    the join between them reads as the cloud read it)."""
    ids: list[int] = []
    text = ""
    for part in parts:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            text += str(part["text"])
        elif isinstance(part.get("ids"), list):
            ids += [int(i) for i in part["ids"]]
    return text + (decode(ids) if ids else "")


# -- candidates ----------------------------------------------------------------------------------


def _kind(example: EvalExample) -> str:
    """The example's task kind: its id after the user part (``u001-birthday``: ``birthday``)."""
    return example.id.split("-", 1)[1] if "-" in example.id else ""


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def candidates_for(
    example: EvalExample, index: int, pool: Sequence[EvalExample], n: int
) -> list[str]:
    """The true fact ``example.facts[index]`` and up to ``n - 1`` distractors of the same kind:
    the facts in the same place of the same task kind, from the pool's other users, distinct;
    shuffled, reproducibly for the example and the place."""
    truth = example.facts[index]
    seen = {_norm(truth)}
    others: list[str] = []
    for other in pool:
        same = _kind(other) == _kind(example) and other.user_id != example.user_id
        if same and index < len(other.facts) and _norm(other.facts[index]) not in seen:
            seen.add(_norm(other.facts[index]))
            others.append(other.facts[index])
    rng = random.Random(f"{example.id}/{index}")
    chosen = [truth, *rng.sample(others, min(n - 1, len(others)))]
    rng.shuffle(chosen)
    return chosen


# -- attackers -----------------------------------------------------------------------------------


def _pick(scores: Sequence[float], rng: random.Random) -> int:
    """The index of the best score, a tie broken at random."""
    best = max(scores)
    top = [i for i, s in enumerate(scores) if s >= best - 1e-9]
    return rng.choice(top)


def string_attacker(text: str, candidates: Sequence[str], rng: random.Random) -> int:
    """Pick a candidate that appears in ``text`` as whole words (any case); at random among
    several, or among all when none does."""
    body = _norm(text)
    found = [
        1.0 if re.search(rf"(?<!\w){re.escape(_norm(c))}(?!\w)", body) else 0.0 for c in candidates
    ]
    return _pick(found, rng)


#: How the model attacker asks: the request, what left, and a fact about the user.
_QUESTION = "A request from a user, the text an assistant wrote for it, and a fact about the user."


class ModelAttacker:
    """Scores candidates by how much what left raises their likelihood under ``model``.

    Args:
        model: the attacker's language model (any backend; the cloud's own by default).
    """

    def __init__(self, model: ModelBackend) -> None:
        self.model = model
        self._stream = model.stream()

    def context(self, request: str, text: str) -> list[int]:
        """The attacker's prompt, with the text that left (``""``: none)."""
        body = f"{_QUESTION}\nRequest: {request}\nText: {text}\nFact about the user:"
        return self.model.encode(body)

    def loglik(self, context: list[int], continuations: Sequence[str]) -> list[float]:
        """``log P(c | context)`` of each continuation ``c`` (summed over its tokens)."""
        out = []
        for c in continuations:
            ids = self.model.encode(" " + c.strip())
            rows = self._stream.logits(context, ids)[: len(ids)]  # [len(ids), V]
            lp = fusion.log_probs(rows)
            out.append(float(lp[torch.arange(len(ids)), torch.tensor(ids)].sum()))
        return out

    def scores(self, request: str, text: str, candidates: Sequence[str]) -> list[float]:
        """Each candidate's ``log P(c | request, text) - log P(c | request)``; all 0 when no
        text left (the attacker then learns nothing)."""
        if not text.strip():
            return [0.0] * len(candidates)
        after = self.loglik(self.context(request, text), candidates)
        before = self.loglik(self.context(request, ""), candidates)
        return [a - b for a, b in zip(after, before, strict=True)]


# -- trials and their summary --------------------------------------------------------------------


@dataclass(frozen=True)
class AttackTrial:
    """One guess: a fact of one answer, the candidates, and what each attacker picked."""

    example_id: str
    method: str
    fact: str
    candidates: tuple[str, ...]
    string_pick: str
    model_pick: str | None


def attack_trials(
    record: Mapping[str, Any],
    example: EvalExample,
    text: str,
    pool: Sequence[EvalExample],
    *,
    n: int,
    attacker: ModelAttacker | None,
) -> list[AttackTrial]:
    """Both attackers on every fact of one answer, given the text that left for it."""
    trials = []
    for index, fact in enumerate(example.facts):
        cands = candidates_for(example, index, pool, n)
        rng = random.Random(f"{record['method']}/{example.id}/{index}")
        model_pick = None
        if attacker is not None:
            model_pick = cands[_pick(attacker.scores(example.input, text, cands), rng)]
        trials.append(
            AttackTrial(
                example_id=example.id,
                method=str(record["method"]),
                fact=fact,
                candidates=tuple(cands),
                string_pick=cands[string_attacker(text, cands, rng)],
                model_pick=model_pick,
            )
        )
    return trials


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``hits / n``."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(trials: Sequence[AttackTrial], attacker: str) -> Record:
    """Top-1 accuracy of one attacker (``string`` or ``model``) with its 95% interval, and
    chance (the mean of ``1 / candidates``)."""
    picks = [(t, t.string_pick if attacker == "string" else t.model_pick) for t in trials]
    picks = [(t, p) for t, p in picks if p is not None]
    hits = sum(p == t.fact for t, p in picks)
    low, high = wilson(hits, len(picks))
    chance = statistics.fmean(1 / len(t.candidates) for t, _ in picks) if picks else 0.0
    return {
        "n": len(picks),
        "accuracy": hits / len(picks) if picks else 0.0,
        "low": low,
        "high": high,
        "chance": chance,
    }


# -- canaries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanarySpace:
    """Secrets of known entropy: a word from ``first`` and one from ``second``, joined by ``-``.

    Ordinary words, so no identifier detector and no rare-word signal flags them: what keeps
    them in is the policy, not the pattern.
    """

    first: tuple[str, ...]
    second: tuple[str, ...]
    memory: str = "My wifi password is {secret}."
    request: str = "What is my wifi password? Tell me in one short sentence."

    @property
    def size(self) -> int:
        """``|R|``, how many secrets there are."""
        return len(self.first) * len(self.second)

    def draw(self, rng: random.Random) -> str:
        """A secret drawn uniformly from the space."""
        return f"{rng.choice(self.first)}-{rng.choice(self.second)}"


_COLOURS = [
    "amber",
    "azure",
    "beige",
    "black",
    "blue",
    "bronze",
    "brown",
    "coral",
    "cream",
    "crimson",
    "cyan",
    "gold",
    "gray",
    "green",
    "indigo",
    "ivory",
    "jade",
    "khaki",
    "lemon",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mint",
    "navy",
    "olive",
    "orange",
    "peach",
    "pink",
    "plum",
    "purple",
    "red",
    "rose",
    "ruby",
    "rust",
    "saffron",
    "salmon",
    "sand",
    "scarlet",
    "silver",
    "slate",
    "tan",
    "teal",
    "violet",
    "white",
    "yellow",
    "copper",
    "cobalt",
    "cherry",
    "emerald",
]
_ANIMALS = [
    "badger",
    "bear",
    "beaver",
    "bison",
    "camel",
    "cat",
    "cheetah",
    "cobra",
    "crane",
    "crow",
    "deer",
    "dingo",
    "dolphin",
    "donkey",
    "eagle",
    "falcon",
    "ferret",
    "finch",
    "fox",
    "frog",
    "gecko",
    "goat",
    "goose",
    "hare",
    "hawk",
    "heron",
    "horse",
    "jackal",
    "koala",
    "lemur",
    "leopard",
    "lion",
    "llama",
    "lynx",
    "moose",
    "mouse",
    "otter",
    "owl",
    "panda",
    "parrot",
    "pelican",
    "penguin",
    "pony",
    "rabbit",
    "raven",
    "seal",
    "shark",
    "sheep",
    "swan",
    "tiger",
    "toad",
    "turtle",
    "wolf",
    "zebra",
]

#: The canaries of ``specsteer attack``: a colour and an animal (about 11.3 bits).
CANARY_SPACE = CanarySpace(tuple(_COLOURS), tuple(_ANIMALS))


def exposure(
    attacker: ModelAttacker | None,
    request: str,
    text: str,
    secret: str,
    space: CanarySpace,
    *,
    samples: int = 64,
    seed: int = 0,
) -> Record:
    """The canary's exposure from ``text`` (what left): ``log2 |R| - log2 rank`` under the model
    attacker's scores, the rank estimated from ``samples`` random secrets (exact among them) and
    a normal fit to their scores for the tail beyond them; ties count half."""
    rng = random.Random(f"{seed}/{secret}")
    others = [s for s in (space.draw(rng) for _ in range(samples * 2)) if s != secret][:samples]
    if attacker is None or not text.strip():
        above, equal, tail = 0, len(others), 0.5  # nothing left: every secret scores the same
    else:
        scores = attacker.scores(request, text, [secret, *others])
        mine, rest = scores[0], scores[1:]
        above = sum(s > mine + 1e-9 for s in rest)
        equal = sum(abs(s - mine) <= 1e-9 for s in rest)
        fit = statistics.NormalDist(statistics.fmean(rest), statistics.pstdev(rest) or 1e-9)
        tail = 1.0 - fit.cdf(mine)
    share = (above + equal / 2 + 0.5) / (len(others) + 1)  # the sample's estimate of rank / |R|
    if above == 0:  # beyond every sampled secret: the normal tail says how far
        share = min(share, max(tail, 1 / space.size))
    return {
        "secret": secret,
        "rank_share": share,
        "exposure": math.log2(space.size) - math.log2(max(1.0, share * space.size)),
        "leaked_verbatim": secret.casefold() in text.casefold(),
    }
