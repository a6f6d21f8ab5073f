"""A text to a person ends with the user's sign-off: added on the device after the last round,
only where the text ended on its own with room for it, never sent to the cloud."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
import torch

from specsteer import Decoder, GenerationConfig, build_prompt
from specsteer._answer import Answer
from specsteer._closing import signed, spacing
from specsteer._events import Tokens
from specsteer._private_context import PrivateContext
from specsteer.cloud_adapter import (
    ForwardingVerifier,
    InProcessVerifier,
    VerifyRequest,
    VerifyResponse,
)
from specsteer.memory import Person
from specsteer.testing import BigramBackend

SIGN_OFF = "talk soon, emre"
TO_SISTER = PrivateContext(
    writer="emre",
    sign_off=SIGN_OFF,
    recipients=(Person("lena", "sister"),),
    memories=("my sister lena lives in rome",),
    writing=True,
)


#: The device (and the cloud) write "hi lena see you soon" and end; the sign-off's words are
#: in the vocabulary too.
WORDS = ["<s>", "<end>", "hi", "lena", "see", "you", "soon", "talk", "soon,", "emre"]
CHAIN = {0: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 1}


@functools.cache
def _device() -> BigramBackend:
    table = torch.full((len(WORDS), len(WORDS)), -10.0)
    for after, nxt in CHAIN.items():
        table[after, nxt] = 10.0
    return BigramBackend(table, WORDS)


class _Recording(ForwardingVerifier):
    """The same model in the cloud, keeping every request it verifies."""

    def __init__(self) -> None:
        super().__init__(InProcessVerifier(_device()))
        self.requests: list[VerifyRequest] = []

    def verify(self, request: VerifyRequest) -> VerifyResponse:
        self.requests.append(request)
        return super().verify(request)


def _generate(context: PrivateContext = TO_SISTER, **cfg: Any) -> tuple[list[Any], _Recording]:
    cloud = _Recording()
    prompt = build_prompt("write a note to my sister", context)
    config = GenerationConfig(**{"max_new_tokens": 12, "draft_tokens": 2, **cfg})
    return list(Decoder(_device(), cloud).stream(prompt, config)), cloud


def test_a_text_to_a_person_knows_its_closing() -> None:
    assert TO_SISTER.closing == SIGN_OFF
    assert build_prompt("hi", TO_SISTER).closing == SIGN_OFF
    answer = PrivateContext(writer="emre", sign_off=SIGN_OFF, memories=("x",), writing=False)
    post = PrivateContext(writer="emre", sign_off=SIGN_OFF, memories=("x",), writing=True)
    assert answer.closing == post.closing == ""
    assert build_prompt("hi", "my sister lena").closing == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi Lena,\nHappy birthday!", False),
        ("Hi Lena,\nHappy birthday!\nTalk soon, Emre", True),
        ("Hi Lena,\nSee you Friday.\n\nBest,\nEmre", True),
        ("Hi Lena, Emre here. See you Friday.\nLove you!", False),
        ("Hi Lena,\nThank you so much.\n\nBest regards,\n[Your name]", True),
        ("Hi Lena,\nThank you so much.\nCheers, Sam", True),
        ("Hi Lena,\nThank you so much.\nCheers!", True),
        ("Hi Lena,\nThanks for the tickets, they were great.", False),
        ("Hi Lena,\nBest of all, the tickets came today and we can all go together.", False),
        ("", False),
    ],
)
def test_a_text_is_signed_when_its_last_line_holds_the_name(text: str, expected: bool) -> None:
    assert signed(text, "Talk soon, Emre") is expected


@pytest.mark.parametrize(
    ("text", "gap"),
    [("Hi Lena, see you.", "\n\n"), ("Hi Lena, see you.\n", "\n"), ("Hi Lena,\n\n", "")],
)
def test_the_sign_off_follows_a_blank_line_once(text: str, gap: str) -> None:
    assert spacing(text) == gap


def test_the_answer_puts_the_sign_off_before_its_end_token() -> None:
    answer = Answer(frozenset({0}), budget=6)
    assert not answer.sign([8, 9])  # not ended yet
    answer.take([5, 6, 0])
    assert not answer.sign([8, 9, 10, 11])  # no room
    assert answer.sign([8, 9]) and answer.tokens == [5, 6, 8, 9, 0]
    assert answer.public == [5, 6, 0]  # the cloud never sees it


@pytest.mark.parametrize("method", ["specsteer", "device_only"])
def test_a_text_that_ends_on_its_own_is_signed_on_the_device(method: str) -> None:
    events, cloud = _generate(method=method)
    result = events[-1].result
    tokens = [e for e in events if isinstance(e, Tokens)]
    sign_ids = tuple(_device().encode("\n\n" + SIGN_OFF))
    assert result.text == "hi lena see you soon talk soon, emre"
    assert result.finish_reason == "eos"
    assert tokens[-2] == Tokens(sign_ids, "persona") and tokens[-1].ids == (1,)
    assert result.stats.new_tokens == len(result.token_ids) - len(sign_ids)
    assert bool(cloud.requests) is (method != "device_only")
    for request in cloud.requests:  # no payload carries a word of it
        sent = {*request.prefix.ids, *request.draft.ids}  # type: ignore[union-attr]
        assert not sent & set(sign_ids)


def test_no_sign_off_where_the_text_was_cut_signed_or_signing_is_off() -> None:
    cut = _generate(max_new_tokens=4)[0][-1].result
    assert cut.finish_reason == "length" and cut.text == "hi lena see you"
    no_room = _generate(max_new_tokens=8)[0][-1].result
    assert no_room.finish_reason == "eos" and no_room.text == "hi lena see you soon"
    off = _generate(sign_texts=False)[0][-1].result
    assert off.finish_reason == "eos" and off.text == "hi lena see you soon"
    own = dataclasses.replace(TO_SISTER, sign_off="see you soon")  # the text ends with it
    assert _generate(own)[0][-1].result.text == "hi lena see you soon"
    answer = dataclasses.replace(TO_SISTER, writing=False)
    assert _generate(answer)[0][-1].result.text == "hi lena see you soon"
    # Methods whose drafter never reads the private context write no private words.
    for method in ("speculative", "token_fusion"):
        assert _generate(method=method)[0][-1].result.text == "hi lena see you soon"
