"""An active cloud probing the private context through recovery: how often does it win?

The cloud chooses ``n_accepted`` and the candidates it returns. :class:`CityProbe` rejects every
draft at its first token and offers the eight cities a user might live in, all at the same fake
log-probability, so the device's choice among them is made by the private steering term alone;
the chosen token is in the next request's prefix, where it reads the first pick.

The device model is :class:`ContextCopier`, a tiny model whose rows are known exactly: a fixed
random bigram table (the public knowledge of language) plus ``bonus`` on every city token the
prompt so far holds (a model that copies from its context, as a real one does). The private
context is "i live in <city>"; the public view lacks it.

Run it to print the success rate with and without the device's defence
(:func:`specsteer._steering.plausible_steering`) against chance, 1/8::

    .venv/bin/python tests/privacy/active_cloud.py --trials 400
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch

from specsteer import Assistant
from specsteer.backends._transformers import TransformersBackend
from specsteer.cloud_adapter import CloudVerifier, TopK, VerifyRequest, VerifyResponse
from specsteer.testing import TINY_WORDS, tiny_backend

CITIES = ("lisbon", "oslo", "lima", "cairo", "hanoi", "quito", "dakar", "perth")
WORDS = (*TINY_WORDS, *CITIES, "live", "meet", "dinner", "where", "should", "tonight")
QUERY = "where should we meet for dinner tonight ?"


class ContextCopier(TransformersBackend):
    """A device model with known rows: ``bigram[prev] + bonus * [city seen earlier]``.

    Built on the tiny model's tokenizer and chat template; its "KV cache" is the ids so far.
    """

    def __init__(self, seed: int = 0, bonus: float = 4.0) -> None:
        base = tiny_backend(seed, words=WORDS)
        super().__init__(base.model, base.tokenizer, name="context-copier")
        gen = torch.Generator().manual_seed(seed)
        self._bigram = 2.0 * torch.randn(self.vocab_size, self.vocab_size, generator=gen)
        self.city_ids = [self.tokenizer.convert_tokens_to_ids(c) for c in CITIES]
        self._bonus = bonus

    def forward_tail(self, ids: Sequence[int], cache: Any | None, rows: int) -> tuple[torch.Tensor, Any]:
        history = list(cache or ()) + list(ids)
        seen = torch.zeros(self.vocab_size)
        out = []
        for pos in range(len(history) - len(ids), len(history)):
            if history[pos] in self.city_ids:
                seen[history[pos]] = self._bonus
            out.append(self._bigram[history[pos]] + seen)
        return torch.stack(out)[-rows:], tuple(history)

    def crop(self, cache: Any, length: int) -> Any | None:
        return tuple(cache[:length])


class CityProbe(CloudVerifier):
    """A hostile cloud: every draft rejected at once, the eight cities offered at equal odds."""

    destination = "hostile-cloud"

    def __init__(self, city_ids: Sequence[int]) -> None:
        self.city_ids = list(city_ids)
        self.picks: list[int] = []
        self._offered = False

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        prefix = getattr(request.prefix, "ids", [])
        if self._offered and prefix:
            self.picks.append(prefix[-1])  # the token the device picked from our offer
        self._offered = True
        lp = math.log(1.0 / len(self.city_ids)) - 1e-9
        top = TopK(ids=self.city_ids, logprobs=[lp] * len(self.city_ids))
        return VerifyResponse(request_id=request.request_id, n_accepted=0, top_k=top)

    def guess(self) -> int | None:
        """The first pick: once a city is in the answer the public view holds it too, and
        later picks among the others are not steered by it."""
        return self.picks[0] if self.picks else None


@contextmanager
def undefended() -> Iterator[None]:
    """Recovery without the defence: the private term steers every candidate."""
    with mock.patch("specsteer._recover.plausible_steering", lambda lp, _row0, _ids: lp):
        yield


def trial(device: ContextCopier, city: int, rounds: int) -> bool:
    """One user living in ``CITIES[city]``: does the probe name it?"""
    probe = CityProbe(device.city_ids)
    assistant = Assistant(device, probe, privacy=False)
    context = f"i live in {CITIES[city]}"
    settings = {"draft_tokens": 4, "adaptive_draft": False, "pipeline": False, "ignore_eos": True}
    assistant.generate(QUERY, context=context, max_new_tokens=rounds + 1, **settings)
    return probe.guess() == device.city_ids[city]


def success_rate(trials: int, *, rounds: int = 2, defended: bool = True, seed: int = 0) -> float:
    """Share of trials where the probe names the user's city (chance: 1/8)."""
    rng = random.Random(seed)
    wins = 0
    for t in range(trials):
        device = ContextCopier(seed=t % 8)  # several "languages": the bigram table varies
        city = rng.randrange(len(CITIES))
        if defended:
            wins += trial(device, city, rounds)
        else:
            with undefended():
                wins += trial(device, city, rounds)
    return wins / trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for defended in (False, True):
        rate = success_rate(args.trials, rounds=args.rounds, defended=defended)
        label = "with the defence" if defended else "without the defence"
        print(f"{label}: {rate:.1%} of {args.trials} trials (chance {1 / len(CITIES):.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
