"""Text mode when the accepted text ends inside one of the cloud's tokens.

The device (word pieces) wrote "tell the" and drafts "m"; the cloud (whole words) reads
"tell them", so its token " them" straddles the draft's start. The draft's probability is that of
" them" given that the text goes on with " the" -- not P_L(" them") itself, which counts the
accepted " the" a second time. The threshold is put between the two, so the verdict shows which
one was judged: in the core, and in the vLLM adapter over the completions emulator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from specsteer import fusion
from specsteer.backends import TransformersBackend
from specsteer.cloud_adapter import (
    BackgroundServer,
    ChatMessage,
    OpenAICompatibleVerifier,
    Text,
    VerifierCore,
    VerifyParams,
    VerifyRequest,
    create_app,
)
from specsteer.testing import tiny_backend

PROMPT = [ChatMessage(role="user", content="what should i say to my sister ?")]
PREFIX, DRAFT = "tell the", "m"


@pytest.fixture(scope="module")
def cloud() -> TransformersBackend:
    return tiny_backend(1)


@pytest.fixture(scope="module")
def emulator(cloud: TransformersBackend) -> Iterator[str]:
    with BackgroundServer(create_app(VerifierCore(cloud), token=None)) as server:
        yield server.url


def scores(cloud: TransformersBackend, among: int | None = None) -> tuple[float, float]:
    """``(log P_L(" them"), log P_L(" them" | text goes on with " the"))`` after "tell",
    the second over the ``among`` most likely tokens and " them" (default: all of them)."""
    context = cloud.encode_chat([m.model_dump() for m in PROMPT]) + cloud.encode("tell")
    row = fusion.log_probs(cloud.forward(context, None)[0][-1])
    them = cloud.encode("them")[0]
    base = cloud.decode([context[-1]], skip_special_tokens=False)
    spelled = [
        i
        for i in range(cloud.vocab_size)
        if cloud.decode([context[-1], i], skip_special_tokens=False)[len(base) :].startswith(" the")
    ]
    assert them in spelled and len(spelled) > 1  # "the", "them", "they", "their", "these"
    if among is not None:
        returned = {them, *torch.topk(row, among).indices.tolist()}
        spelled = [i for i in spelled if i in returned]
    lp = float(row[them])
    return lp, lp - float(torch.logsumexp(row[spelled].double(), 0))


def request(ctxfree: float) -> VerifyRequest:
    return VerifyRequest(
        request_id="straddle",
        prompt=PROMPT,
        prefix=Text(text=PREFIX),
        draft=Text(text=DRAFT, offsets=[len(DRAFT)]),
        ctxfree_logprobs=[ctxfree],
        params=VerifyParams(lam=1.0, greedy=True, top_k=4),
    )


def test_the_straddling_token_is_judged_given_its_accepted_characters(cloud, emulator) -> None:
    raw, conditional = scores(cloud)
    assert conditional - raw > 0.05  # the accepted characters carry real probability
    between = (raw + conditional) / 2
    # Accepted iff log P_L >= log P_S0 (lam = 1): the conditional passes, the raw one would not.
    assert VerifierCore(cloud).verify(request(between)).n_accepted == 1
    assert VerifierCore(cloud).verify(request(min(0.0, conditional + 0.05))).n_accepted == 0
    # vLLM returns the top N (here 4) and the token itself: the mass spelling " the" among them.
    _, returned = scores(cloud, among=4)
    assert returned - raw > 0.05
    with OpenAICompatibleVerifier(emulator, cloud.name, tokenizer=cloud) as adapter:
        assert adapter.verify(request((raw + returned) / 2)).n_accepted == 1
