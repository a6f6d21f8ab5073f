"""A chat's earlier answers go back to the cloud as the cloud saw them: the text the device kept
back from one turn (held for its context lift, the user's sign-off) never leaves in the next
turn's history, where every OpenAI-style client quotes the answer."""

from __future__ import annotations

import pytest

from specsteer import Assistant
from specsteer._answer_views import AnswerViews
from specsteer.memory import HashEmbedder, MemoryStore, Person, Persona
from specsteer.testing import TINY_WORDS, tiny_backend

from .copying import CopyingBackend
from .test_canaries import Spy
from .wire import payload_texts

SECRET = "amber wolf"
WORDS = (*TINY_WORDS, "wifi", "password", "amber", "wolf", "lena", "maya", "dear")
SCRIPT = "dear lena , your wifi password is amber wolf . love maya"
ASK = "tell my sister what the wifi password is"


def maya() -> tuple[Assistant, Spy, CopyingBackend]:
    store = MemoryStore(embedder=HashEmbedder())
    store.add("maya", f"my wifi password is {SECRET} and the router is in the office")
    persona = Persona(name="Maya", sign_off="love maya", people=(Person("Lena", "sister"),))
    store.set_persona("maya", persona)
    base = tiny_backend(0, words=WORDS)
    device = CopyingBackend(base, f"my wifi password is {SECRET}")
    device.script = base.encode(SCRIPT)
    cloud = Spy(tiny_backend(1, words=WORDS))
    # The default privacy: the guard and the context-lift policy.
    return Assistant(device, cloud, memory=store, user_id="maya"), cloud, device


def sent(cloud: Spy, device: CopyingBackend, since: int = 0) -> str:
    return "\n".join(payload_texts(w, device.decode) for w in cloud.received[since:]).lower()


@pytest.mark.parametrize("quote", ["whole", "cut short"])
def test_an_earlier_answer_goes_back_as_the_cloud_saw_it(quote: str) -> None:
    assistant, cloud, device = maya()
    first = assistant.generate(ASK, max_new_tokens=24, adaptive_draft=False)
    assert SECRET in first.text and "love maya" in first.text  # the user got it all
    assert SECRET not in sent(cloud, device)  # and the policy kept it back
    before = len(cloud.received)
    answer = first.text if quote == "whole" else first.text[: first.text.index(SECRET) + 12]
    chat = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "thank you , now say it again"},
    ]
    assistant.generate(chat, max_new_tokens=8, adaptive_draft=False)
    history = sent(cloud, device, before)
    assert len(cloud.received) > before and ASK in history
    assert SECRET not in history and "wolf" not in history
    if quote == "whole":
        assert "maya" not in history  # the sign-off was added on the device, after the end


def test_an_assistant_turn_the_assistant_never_wrote_goes_as_written() -> None:
    assistant, cloud, device = maya()
    chat = [
        {"role": "user", "content": "what is the plan"},
        {"role": "assistant", "content": "the plan is to go home"},
        {"role": "user", "content": "and then ?"},
    ]
    assistant.generate(chat, max_new_tokens=4, adaptive_draft=False)
    assert "the plan is to go home" in sent(cloud, device)


def test_the_oldest_answers_are_forgotten_first() -> None:
    views = AnswerViews(lambda text: "[kept]", size=2)
    for i in range(3):
        views.answered(f"answer {i} secret{i}", f"answer {i} [kept]")
        views.kept(f"secret{i}")
    assert views.public("answer 2 secret2") == "answer 2 [kept]"
    assert views.public("answer 0 secret0") == "answer 0 secret0"  # forgotten, and its text too
    assert views.public("so secret1 it is") == "so [kept] it is"  # a quote cut or edited
