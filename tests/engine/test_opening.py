"""A refusal taken out of the device's opening: "I am sorry , but cannot help with that" becomes
"I am glad to write ..." for a text written as the user; an apology, a request for an answer and
a generation without ``recover_refusals`` keep what the model writes; an answer that refuses
nothing is token for token the one written without the step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from specsteer import Decoder, GenerationConfig, PrivateEgress, Tokens, build_prompt
from specsteer._opening import (
    REFUSAL_OPENING,
    RefusalGuard,
    is_refusal,
    opening_without_refusal,
)
from specsteer._prompt import Prompt
from specsteer.cloud_adapter import ForwardingVerifier, InProcessVerifier, VerifyRequest
from specsteer.privacy import EgressPolicy
from specsteer.testing import BigramBackend, tiny_backend

WORDS = ["<s>", "<end>", "I", "am", "sorry", ",", "but", "cannot", "help", "with", "that", "."]
WORDS += ["glad", "to", "write", "this", "hear", "private"]


#: "I am sorry , but cannot help with that ." with "glad to write this ." as the runner-up.
REFUSING = {
    "<s>": {"I": 5.0},
    "I": {"am": 5.0},
    "am": {"sorry": 5.0, "glad": 4.0},
    "sorry": {",": 5.0},
    ",": {"but": 5.0},
    "but": {"cannot": 5.0},
    "cannot": {"help": 5.0},
    "help": {"with": 5.0},
    "with": {"that": 5.0},
    "that": {".": 5.0},
    "glad": {"to": 5.0},
    "to": {"write": 5.0, "hear": 1.0},
    "write": {"this": 5.0},
    "this": {".": 5.0},
    ".": {"<end>": 5.0},
}
#: "I am sorry to hear that ." (an apology, not a refusal).
APOLOGY = {**REFUSING, "sorry": {"to": 5.0}, "to": {"hear": 5.0}, "hear": {"that": 5.0}}


class Words(BigramBackend):
    """A bigram model whose ``encode`` skips words it does not know (a placeholder)."""

    def encode(self, text: str) -> list[int]:
        return [WORDS.index(w) for w in text.split() if w in WORDS]


def _model(chain: dict[str, dict[str, float]], name: str = "words") -> Words:
    return Words.from_chain(WORDS, chain, name=name)


def _opening(chain: dict[str, dict[str, float]]) -> str:
    model = _model(chain)
    return model.decode(opening_without_refusal(model.stream(), model.decode, [0], frozenset({1})))


def _writing(query: str = "post about my trip") -> Prompt:
    return dataclasses.replace(build_prompt(query), writing=True)


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry",
        "I am so sorry",
        "Sorry",
        "I can't",
        "I cannot",
        "I'm unable",
        "As an AI",
        "Unfortunately",
        "Hi Lena,\n\nI'm sorry",
    ],
)
def test_a_refusal_opening_is_recognized(text: str) -> None:
    assert REFUSAL_OPENING.match(text)


@pytest.mark.parametrize("text", ["I'm so excited", "I hope", "As a", "Hi Lena, sorry"])
def test_other_openings_are_not(text: str) -> None:
    assert not REFUSAL_OPENING.match(text)


def test_the_refusal_is_taken_out_at_the_token_that_made_it() -> None:
    assert _opening(REFUSING) == "I am glad to write"


def test_an_apology_is_not_a_refusal() -> None:
    assert not is_refusal("I am sorry to hear that .")
    assert _opening(APOLOGY) == ""


def test_an_opening_that_refuses_nothing_is_left_alone_after_a_few_tokens() -> None:
    model = _model({**REFUSING, "am": {"glad": 5.0}})
    stream = model.stream()
    assert opening_without_refusal(stream, model.decode, [0], frozenset({1})) == []
    assert stream.tokens_computed <= 4  # "I am glad": no refusal can follow


def test_past_its_tries_the_opening_is_left_to_the_model() -> None:
    model = _model(REFUSING)
    ids = opening_without_refusal(model.stream(), model.decode, [0], frozenset({1}), tries=0)
    assert ids == []


def _answer(prompt: Prompt, method: str = "device_only", **cfg: object) -> str:
    device = _model(REFUSING)
    cloud = InProcessVerifier(_model(REFUSING, "cloud"))
    decoder = Decoder(device, cloud, wire="ids")
    config = GenerationConfig(method=method, max_new_tokens=12, **cfg)  # type: ignore[arg-type]
    return decoder.generate(prompt, config).text


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_a_text_to_write_opens_without_the_refusal(method: str) -> None:
    assert _answer(_writing(), method) == "I am glad to write this ."


def test_an_answer_to_the_user_and_an_opted_out_generation_keep_the_refusal() -> None:
    refusal = "I am sorry , but cannot help with that ."
    assert _answer(build_prompt("what is my plan ?")) == refusal
    assert _answer(_writing(), recover_refusals=False) == refusal


class _Tap(ForwardingVerifier):
    def __init__(self, inner: InProcessVerifier) -> None:
        super().__init__(inner)
        self.prefixes: list[list[int]] = []

    def transmit(self, request: VerifyRequest, wire: bytes):  # type: ignore[no-untyped-def]
        self.prefixes.append(list(getattr(request.prefix, "ids", [])))
        return super().transmit(request, wire)


def test_the_cloud_sees_the_opening_only_as_screened() -> None:
    """An opening that carries private text reaches the cloud as a placeholder, and is marked
    kept on the device."""
    device = _model(REFUSING)
    tap = _Tap(InProcessVerifier(_model(REFUSING, "cloud")))
    egress = PrivateEgress(policy=EgressPolicy())
    egress.begin(["my friend is glad"], names=["glad"])
    decoder = Decoder(device, tap, egress=egress, wire="ids")
    events = list(decoder.stream(_writing(), GenerationConfig(max_new_tokens=12)))
    first = next(e for e in events if isinstance(e, Tokens))
    assert device.decode(list(first.ids)) == "I am glad to write"
    assert (first.kind, first.kept) == ("device", "guard")
    sent = " ".join(device.decode(p) for p in tap.prefixes)
    assert tap.prefixes and "glad" not in sent
    assert device.decode(tap.prefixes[0]) == "I am to write"  # the placeholder, unknown here


def _tiny_ids(recover: bool, method: str) -> list[int]:
    device, cloud = tiny_backend(0), tiny_backend(1)
    decoder = Decoder(device, InProcessVerifier(cloud))
    prompt = dataclasses.replace(build_prompt("write to my sister", "she lives"), writing=True)
    cfg = GenerationConfig(method=method, max_new_tokens=16, recover_refusals=recover, seed=3)
    return decoder.generate(prompt, cfg).token_ids


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_an_answer_that_refuses_nothing_is_unchanged(method: str) -> None:
    assert _tiny_ids(True, method) == _tiny_ids(False, method)


def test_a_kept_row_is_read_back_as_computed() -> None:
    model = tiny_backend(0)
    stream = model.stream()
    first = stream.logits([5, 6, 7], keep_row=True)
    stream.logits([5, 6, 7, 8, 9])
    computed = stream.tokens_computed
    again = stream.logits([5, 6, 7])
    assert torch.equal(first, again)
    assert stream.tokens_computed == computed and stream.tokens == [5, 6, 7]
    stream.logits([5, 6, 10])  # position 2 computed again: the kept row is gone
    stream.logits([5, 6, 7])
    assert stream.tokens_computed > computed + 1


#: The device opens "I am glad to write this ." (no refusal to take out of its opening); the
#: cloud would rather say "I am sorry", and its recovery steers the answer there.
GLAD_DEVICE = {**REFUSING, "am": {"glad": 5.0, "sorry": 4.0}}
SORRY_CLOUD = {**REFUSING, "am": {"sorry": 5.0, "glad": 3.0}}


def _steered(
    recover: bool,
    device: dict[str, dict[str, float]] = GLAD_DEVICE,
    cloud: dict[str, dict[str, float]] = SORRY_CLOUD,
) -> str:
    decoder = Decoder(_model(device), InProcessVerifier(_model(cloud, "cloud")), wire="ids")
    cfg = GenerationConfig(max_new_tokens=12, recover_refusals=recover)
    return decoder.generate(_writing(), cfg).text


def test_a_refusal_the_clouds_recovery_starts_is_taken_out_too() -> None:
    """The opening refuses nothing, so the opening check leaves it; the round that would make
    the text "I am sorry" keeps "I am", and the token is ruled out there for the drafter and
    the recovery alike."""
    assert _steered(recover=False) == "I am sorry , but cannot help with that ."
    assert _steered(recover=True) == "I am glad to write this ."


def test_an_apology_the_recovery_starts_is_kept() -> None:
    rest = {"sorry": {"to": 5.0}, "to": {"hear": 5.0}, "hear": {"that": 5.0}}
    text = _steered(True, {**GLAD_DEVICE, **rest}, {**SORRY_CLOUD, **rest})
    assert text == "I am sorry to hear that ."


def test_the_guard_reads_only_the_opening_and_stops_at_its_tries() -> None:
    model = _model(GLAD_DEVICE)
    ids = [WORDS.index(w) for w in ["I", "am", "sorry"]]
    guard = RefusalGuard(model.stream(), model.decode, [0], frozenset({1}))
    assert guard.cut(ids[:2], ids[2:]) == 0 and guard.banned == {2: {ids[2]}}
    late = RefusalGuard(model.stream(), model.decode, [0], frozenset({1}), window=2)
    assert late.cut(ids[:2], ids[2:]) is None  # past the window: nothing read
    spent = RefusalGuard(model.stream(), model.decode, [0], frozenset({1}), tries=0)
    assert spent.cut(ids[:2], ids[2:]) is None and spent.done and not spent.banned
    there = RefusalGuard(model.stream(), model.decode, [0], frozenset({1}))
    assert there.cut(ids, [WORDS.index(",")]) is None and there.done  # already refusing
