"""The phrases a text written as the user never says, on the device alone and in SpecSteer.

- The user's things stay the user's: asked to thank the neighbour "for minding my pet", the
  device's "thanks for minding your pet" becomes "thanks for minding my pet"; a "your" before
  anything else is kept, and so is every token of an answer to the user and of a generation
  with ``keep_owner=False``.
- No notes read out one after another: a text that read out one of the user's notes ends before
  a sentence that would read out another; with one note read out, or ``end_recitals=False``,
  or before ``min_new_tokens``, every token is kept, and the cloud never sees the sentence.
- No "as an AI": after a sentence of thanks the device model went on "As an AI language model,
  I don't have the ability to ..."; the "As" that starts it is ruled out at its position. An
  "As" that goes on to anything else is kept, and so is every token with
  ``recover_refusals=False``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import pytest

from specsteer import Decoder, GenerationConfig, PrivateEgress, Tokens, build_prompt
from specsteer._opening import ai_guard
from specsteer._perspective import owned_words, owner_guard, swaps_owner
from specsteer._private_context import PrivateContext
from specsteer._prompt import Prompt
from specsteer._recital import RecitalGuard, notes_read, reads_out
from specsteer.cloud_adapter import ForwardingVerifier, InProcessVerifier, VerifyRequest
from specsteer.memory import Person
from specsteer.privacy import EgressPolicy
from specsteer.testing import BigramBackend

WORDS = ["<s>", "<end>", "thanks", "for", "minding", "your", "my", "pet", "help", ".", "this"]
WORDS += ["As", "an", "AI", "ever", ",", "I", "am", "glad"]
WORDS += ["hello", "we", "walk", "our", "dog", "Ruby", "daily", "choir", "practice", "runs"]
WORDS += ["every", "Friday", "evening", "!"]

#: "thanks for minding your pet ." with "my" as the runner-up after "minding".
SWAPPING = {
    "<s>": {"thanks": 5.0},
    "thanks": {"for": 5.0},
    "for": {"minding": 5.0, "your": 1.0},
    "minding": {"your": 5.0, "my": 4.0},
    "your": {"pet": 5.0, "help": 1.0},
    "my": {"pet": 5.0},
    "pet": {".": 5.0},
    "help": {".": 5.0},
    ".": {"<end>": 5.0},
}
#: "thanks for your help ." : the reader's help is the reader's.
THANKING = {**SWAPPING, "for": {"your": 5.0, "minding": 1.0}, "your": {"help": 5.0, "pet": 1.0}}


class Words(BigramBackend):
    def encode(self, text: str) -> list[int]:
        return [WORDS.index(w) for w in text.split() if w in WORDS]


def _model(chain: dict[str, dict[str, float]], name: str = "words") -> Words:
    return Words.from_chain(WORDS, chain, name=name)


def _greedy(model: Words) -> Callable[[Sequence[int]], int]:
    """The model's greedy next token after an answer (its prompt is the start token)."""
    stream = model.stream()
    return lambda answer: int(stream.logits([0, *answer])[-1].argmax())


def _tapped(
    device: Words, chain: dict[str, dict[str, float]], sent: list[str]
) -> ForwardingVerifier:
    """A cloud running ``chain`` that notes the text of every draft sent to it in ``sent``."""

    class Tap(ForwardingVerifier):
        def transmit(self, request: VerifyRequest, wire: bytes):  # type: ignore[no-untyped-def]
            sent.append(device.decode(list(getattr(request.draft, "ids", []))))
            return super().transmit(request, wire)

    return Tap(InProcessVerifier(_model(chain, "cloud")))


def _to_neighbour(owned: frozenset[str] = frozenset({"pet"})) -> Prompt:
    prompt = build_prompt("thank my neighbour for minding my pet")
    return dataclasses.replace(prompt, writing=True, owned=owned)


def _text(
    method: str,
    device: dict[str, dict[str, float]] = SWAPPING,
    prompt: Prompt | None = None,
    **options: bool | int,
) -> str:
    cloud = InProcessVerifier(_model(device, "cloud"))
    decoder = Decoder(_model(device), cloud, wire="ids")
    cfg = GenerationConfig.model_validate({"method": method, "max_new_tokens": 20, **options})
    return decoder.generate(prompt or _to_neighbour(), cfg).text


@pytest.mark.parametrize(
    ("request_", "owned"),
    [
        ("Write a thank-you note to my neighbour for looking after my pet.", {"pet"}),
        ("Write a message asking my best friend to join my weekly class.", {"weekly"}),
        ("Help me ask my landlord, by email, to finally fix the problem in my flat.", {"flat"}),
        ("It's my brother's birthday soon and I want to send a message.", set()),
        (
            "Put my thanks to my neighbour for watching my pet into a note, in my own words.",
            {"pet"},
        ),
        ("My coworker wants to swap a shift next week. Write my reply.", set()),
        ("Text my best friend about my sister's visit.", set()),
        ("Invite My Best Friend to my Garden party.", {"garden"}),
    ],
)
def test_what_a_request_calls_the_users(request_: str, owned: set[str]) -> None:
    assert owned_words(request_) == owned


@pytest.mark.parametrize(
    ("answer", "swapped"),
    [
        ("I am writing to thank you for looking after your pet, Pesto.", True),
        ("Thank you for looking after my pet Pesto.", False),
        ("Thank you for your help with Pesto, my pet.", False),
        ("Your pet-sitting was wonderful.", False),
        ("YOUR PET is lovely.", True),
    ],
)
def test_a_text_that_calls_the_users_things_the_readers(answer: str, swapped: bool) -> None:
    request = "Write a thank-you note to my neighbour for looking after my pet."
    assert swaps_owner(answer, request) is swapped
    assert swaps_owner(answer, "Write a birthday note for my sister.") is None


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_the_users_pet_stays_theirs(method: str) -> None:
    assert _text(method, keep_owner=False) == "thanks for minding your pet ."
    assert _text(method) == "thanks for minding my pet ."


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_the_readers_help_is_theirs(method: str) -> None:
    assert _text(method, THANKING) == "thanks for your help ."


def test_an_answer_to_the_user_keeps_every_token() -> None:
    answer = dataclasses.replace(build_prompt("what did I ask my neighbour about my pet?"))
    assert answer.owned == frozenset()
    assert _text("device_only", prompt=answer) == "thanks for minding your pet ."


def test_a_text_to_a_person_is_told_what_its_request_calls_the_users() -> None:
    lena = Person("Lena", "neighbour")
    query = "thank my neighbour for minding my pet"
    to_lena = PrivateContext(writer="Maya", recipients=(lena,), writing=True)
    assert build_prompt(query, to_lena).owned == frozenset({"pet"})
    post = PrivateContext(writer="Maya", writing=True)
    assert build_prompt("a post about my pet", post).owned == frozenset()
    answer = PrivateContext(writer="Maya", recipients=(lena,))
    assert build_prompt(query, answer).owned == frozenset()


def test_the_guard_reads_ahead_and_stops_at_its_tries() -> None:
    model = _model(SWAPPING)
    ids = [WORDS.index(w) for w in ["thanks", "for", "minding", "your"]]
    args = (_greedy(model), model.decode, frozenset({1}), frozenset({"pet"}))
    guard = owner_guard(*args)
    assert guard.cut(ids[:3], ids[3:]) == 0 and guard.banned == {3: {ids[3]}}  # "pet" read ahead
    help_ = WORDS.index("help")
    assert owner_guard(*args).cut(ids[:3], [ids[3], help_]) is None  # "your help": the round's own
    spent = owner_guard(*args, tries=0)
    assert spent.cut(ids[:3], ids[3:]) is None and not spent.banned


def test_a_round_kept_on_the_device_keeps_the_pet_theirs_too() -> None:
    """The pet's name is private, so the egress guard keeps the rounds that say it on the
    device, and those are appended as drafted: the draft is cut before its "your" all the same,
    and the cloud never sees the token."""
    sent: list[str] = []
    device = _model(SWAPPING)
    egress = PrivateEgress(policy=EgressPolicy())
    egress.begin(["minding my pet"], names=["pet"])
    decoder = Decoder(device, _tapped(device, SWAPPING, sent), egress=egress, wire="ids")
    events = list(decoder.stream(_to_neighbour(), GenerationConfig(max_new_tokens=12)))
    assert any(isinstance(e, Tokens) and e.kept == "guard" for e in events)
    text = device.decode([t for e in events if isinstance(e, Tokens) for t in e.ids])
    assert text == "thanks for minding my pet ."
    assert not any("your" in s for s in sent)


# -- no "as an AI" ----------------------------------------------------------------------------

#: "thanks for this . As an AI , I am glad" with "I" as the runner-up after ".".
DISCLAIMING = {
    "<s>": {"thanks": 5.0},
    "thanks": {"for": 5.0},
    "for": {"this": 5.0},
    "this": {".": 5.0},
    ".": {"As": 5.0, "I": 4.0},
    "As": {"an": 5.0, "ever": 1.0},
    "an": {"AI": 5.0},
    "AI": {",": 5.0},
    "ever": {",": 5.0},
    ",": {"I": 5.0},
    "I": {"am": 5.0},
    "am": {"glad": 5.0},
    "glad": {"<end>": 5.0},
}
#: A text written as the user, to nobody.
_THANKS = dataclasses.replace(build_prompt("thank my neighbour"), writing=True)
#: "thanks for this . As ever , I am glad": an "As" that is no disclaimer.
AS_EVER = {**DISCLAIMING, "As": {"ever": 5.0, "an": 1.0}}


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_a_text_written_as_the_user_never_speaks_as_an_ai(method: str) -> None:
    off = _text(method, DISCLAIMING, _THANKS, recover_refusals=False)
    assert off == "thanks for this . As an AI , I am glad"
    assert _text(method, DISCLAIMING, _THANKS) == "thanks for this . I am glad"


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_an_as_that_goes_on_to_anything_else_is_kept(method: str) -> None:
    assert _text(method, AS_EVER, _THANKS) == "thanks for this . As ever , I am glad"


def test_the_guard_reads_only_a_clause_start() -> None:
    model = _model(DISCLAIMING)
    ids = [WORDS.index(w) for w in ["thanks", "for", "this", ".", "As"]]
    guard = ai_guard(_greedy(model), model.decode, frozenset({1}))
    assert guard.cut(ids[:4], ids[4:]) == 0 and guard.banned == {4: {ids[4]}}
    mid = ai_guard(_greedy(model), model.decode, frozenset({1}))
    assert mid.cut(ids[:3], ids[4:]) is None  # "thanks for this As": mid-sentence, not read


# -- no notes read out -----------------------------------------------------------------------

#: "hello , we walk our dog Ruby daily . choir practice runs every Friday evening !": a
#: greeting, then two of the user's notes read out one after the other.
LISTING = {
    "<s>": {"hello": 5.0},
    "hello": {",": 5.0},
    ",": {"we": 5.0},
    "we": {"walk": 5.0},
    "walk": {"our": 5.0},
    "our": {"dog": 5.0},
    "dog": {"Ruby": 5.0},
    "Ruby": {"daily": 5.0},
    "daily": {".": 5.0},
    ".": {"choir": 5.0, "<end>": 4.0},
    "choir": {"practice": 5.0},
    "practice": {"runs": 5.0},
    "runs": {"every": 5.0},
    "every": {"Friday": 5.0},
    "Friday": {"evening": 5.0},
    "evening": {"!": 5.0},
    "!": {"<end>": 5.0},
}
NOTES = ("We walk our dog Ruby daily.", "Choir practice runs every Friday evening.")
WHOLE = "hello , we walk our dog Ruby daily . choir practice runs every Friday evening !"


def _with_notes(notes: tuple[str, ...] = NOTES) -> Prompt:
    return dataclasses.replace(build_prompt("a note to Lena"), writing=True, notes=notes)


@pytest.mark.parametrize(
    ("text", "read", "out"),
    [
        (
            "Hi Lena! We walk our dog Ruby daily. Choir practice runs every Friday evening.",
            {0, 1},
            True,
        ),
        ("Hi Lena! We walk our dog Ruby daily, and I miss you.", {0}, False),
        ("We walk our dog Ruby daily; choir practice runs every Friday evening.", {0, 1}, False),
        ("Hi Lena!\nwe WALK our dog, Ruby, daily.\nChoir practice runs every Friday.", {0}, False),
        ("Our dog Ruby loves a walk. Choir practice runs every Friday evening.", {1}, False),
    ],
)
def test_a_text_that_reads_out_the_users_notes(text: str, read: set[int], out: bool) -> None:
    assert notes_read(text, NOTES) == read
    assert reads_out(text, NOTES) is out


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_a_text_ends_before_it_reads_out_another_note(method: str) -> None:
    assert _text(method, LISTING, _with_notes(), end_recitals=False) == WHOLE
    assert _text(method, LISTING, _with_notes()) == "hello , we walk our dog Ruby daily ."


@pytest.mark.parametrize("method", ["device_only", "specsteer"])
def test_one_note_read_out_is_kept(method: str) -> None:
    assert _text(method, LISTING, _with_notes(NOTES[1:])) == WHOLE
    assert _text(method, LISTING, _with_notes(())) == WHOLE


def test_a_text_too_short_to_end_goes_on() -> None:
    assert _text("device_only", LISTING, _with_notes(), min_new_tokens=10) == WHOLE


def test_the_cloud_never_sees_the_sentence_that_would_read_out_a_note() -> None:
    sent: list[str] = []
    device = _model(LISTING)
    decoder = Decoder(device, _tapped(device, LISTING, sent), wire="ids")
    result = decoder.generate(_with_notes(), GenerationConfig(max_new_tokens=20, draft_tokens=4))
    assert result.text == "hello , we walk our dog Ruby daily ."
    assert sent and not any("choir" in s for s in sent)


def test_the_recital_guard_reads_ahead_only_at_a_sentence_start() -> None:
    model = _model(LISTING)
    ids = model.encode(WHOLE)  # "choir" is token 9
    guard = RecitalGuard(_greedy(model), model.decode, frozenset({1}), NOTES, lambda at: True)
    assert guard.cut(ids[:4], ids[4:9]) is None and not guard.ends  # no sentence starts
    assert guard.cut(ids[:8], ids[8:10]) == 1 and guard.ends == {9}  # "choir", read ahead
    assert guard.cut(ids[:9], [1]) is None  # the end token may stand there
    later = RecitalGuard(_greedy(model), model.decode, frozenset({1}), NOTES, lambda at: at > 9)
    assert later.cut(ids[:9], ids[9:]) is None and not later.ends
