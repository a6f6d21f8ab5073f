"""Who writes to whom: the relation a request names, the person it means, what the device is
told, and which memories it gets. Tables with near-misses; the assistant on the in-memory fake."""

from __future__ import annotations

import pytest

from specsteer import DEFAULT_SYSTEM_PROMPT, Assistant, build_prompt
from specsteer._addressing import is_writing_request, named_relations, recipients
from specsteer._errors import ConfigurationError
from specsteer._private_context import PrivateContext, second_person
from specsteer._retrieval import RetrievalPolicy, _about_others, fit_memories, select_memories
from specsteer.memory import Person, Persona
from specsteer.memory.testing import InMemoryStore
from specsteer.testing import tiny_backend

PEOPLE = Persona(
    name="Maya Okafor",
    sign_off="Love, Maya",
    people=(
        Person("Lena", "sister"),
        Person("Inês", "best friend"),
        Person("Léa", "colleague"),
        Person("Ms Levi", "landlord"),
        Person("Gabriela", "partner"),
        Person("Ada", "mum"),
    ),
)


@pytest.mark.parametrize(
    ("request_text", "names"),
    [
        ("Write a short birthday message for my sister.", ["Lena"]),
        ("It's my sister's birthday soon.", ["Lena"]),
        ("Invite my work friend out for a coffee.", ["Léa"]),
        ("My coworker wants to swap a shift next week. Write my reply.", ["Léa"]),
        ("Write a message inviting a colleague for coffee.", ["Léa"]),
        ("Text my friend about Sunday.", ["Inês"]),  # no plain friend: the best friend
        ("Send a text to my girlfriend about tonight.", ["Gabriela"]),
        ("Email the landlord about the boiler.", ["Ms Levi"]),
        ("landlord email - the boiler still bangs", ["Ms Levi"]),
        ("Call my mother back.", ["Ada"]),  # "mum" and "mother" are one relation
        ("A note for my sister and my landlord.", ["Lena", "Ms Levi"]),
        # Near-misses: no relation, a relation nobody has, or not the user's.
        ("What could I cook for dinner tonight?", []),
        ("Write to my brother.", []),
        ("Her sister is coming over.", []),
        ("Write about sisterhood.", []),
        ("Sisterhood is a theme of my book.", []),
    ],
)
def test_recipients(request_text: str, names: list[str]) -> None:
    assert [p.name for p in recipients(request_text, PEOPLE)] == names


def test_named_relations_are_as_written() -> None:
    # "my mum's partner" names the mum, not the user's partner.
    assert named_relations("Text my Best Friend and my mum's partner") == ["best friend", "mum"]


@pytest.mark.parametrize(
    ("request_text", "writing"),
    [
        ("Write my product review of the kettle. 4 stars.", True),
        ("review for the Okapi shoes, 4/5", True),
        ("landlord email - the tap still leaks", True),
        ("birthday text to my sister pls", True),
        ("I want to make plans with my best friend for this weekend.", True),
        ("Invite my work friend out for coffee.", True),
        ("Help me put into words what I think of the kettle (4 stars).", True),
        # Answers for the user, not texts to send.
        ("What could I cook for dinner tonight?", False),
        ("Plan my Saturday morning.", False),
        ("Make a short packing list for my trip.", False),
        ("What does my sister like?", False),
        ("Does my landlord live nearby", False),
    ],
)
def test_is_writing_request(request_text: str, writing: bool) -> None:
    assert is_writing_request(request_text, PEOPLE) is writing


def test_a_text_to_send_is_written_as_the_user_to_the_person_named() -> None:
    context = PrivateContext(
        writer="Maya",
        sign_off="Love, Maya",
        recipients=(Person("Lena Okafor", "sister"),),
        memories=("My sister Lena lives in Lisbon.", "I  am\nvegetarian."),
        writing=True,
    )
    block = context.render()
    assert block.splitlines() == [
        "You are Maya's ghostwriter: you write Maya's messages, emails, notes, reviews and "
        'posts, in the first person as Maya ("I" is Maya). You always write the text itself, '
        "ready to send; you never refuse, ask questions or repeat the request.",
        "This one is to Lena Okafor, Maya's sister: greet Lena Okafor.",
        'What Maya wrote down ("I" and "my" are Maya):',
        "- My sister Lena lives in Lisbon.",
        "- I am vegetarian.",
    ]
    assert context.request("Birthday text to my sister pls") == (
        "Birthday text to my sister pls\n"
        '(Write a few sentences as Maya, starting with "Happy birthday, Lena!".)'
    )
    assert set(context.texts()) >= {block, "Maya", "Love, Maya", "Lena Okafor"}


@pytest.mark.parametrize(
    ("person", "opening"),
    [
        (Person("Lena Okafor", "sister"), "Hi Lena,"),
        (Person("Ms Levi", "landlord"), "Dear Ms Levi,"),
        (Person("Dr. Ana Silva", "friend"), "Hi Dr. Ana Silva,"),
        (Person("Tom", "boss"), "Dear Tom,"),
    ],
)
def test_the_opening_greets_the_recipient(person: Person, opening: str) -> None:
    assert PrivateContext(recipients=(person,), writing=True).opening() == opening
    assert PrivateContext(writing=True).opening() == ""


@pytest.mark.parametrize(
    ("person", "query", "hint"),
    [
        (
            Person("Lena Okafor", "sister"),
            "Write a short birthday message for my sister.",
            '(Write a few sentences as Maya, starting with "Happy birthday, Lena!".)',
        ),
        (
            Person("Ms Levi", "landlord"),
            "birthday card for my landlord",
            '(Write a few sentences as Maya, starting with "Happy birthday, Ms Levi!".)',
        ),
        (
            Person("Noah", "brother"),
            "It's my brother's birthday soon and I want to send a message.",
            '(Write a few sentences as Maya, starting with "Happy birthday, Noah!".)',
        ),
        (
            Person("Greta", "neighbour"),
            "Write a thank-you note to my neighbour.",
            '(Write a few sentences as Maya, starting with "Hi Greta,".)',
        ),
        (  # the user's own birthday: no wish to the reader
            Person("Lena Okafor", "sister"),
            "Invite my sister to my birthday party.",
            '(Write a few sentences as Maya, starting with "Hi Lena,".)',
        ),
    ],
)
def test_a_birthday_message_opens_with_the_wish(person: Person, query: str, hint: str) -> None:
    context = PrivateContext(writer="Maya", recipients=(person,), writing=True)
    assert context.request(query) == f"{query}\n{hint}"
    assert context.opening(query) == hint.split('"')[1]


def test_a_review_or_a_post_has_no_one_to_greet() -> None:
    review = PrivateContext(writer="Jonas", sign_off="Talk soon, Jonas", writing=True, review=True)
    assert review.render().splitlines()[1] == (
        "This one is a review: start with what you think of it."
    )
    # Written as its buyer: asked for "the text itself", the device model answered the review.
    assert review.request("Review my kettle, 4 stars.") == (
        "Review my kettle, 4 stars.\n(Write the review itself as the one who bought it, in the "
        "first person, ready to post.)"
    )
    # Nobody to greet and no sign-off: the device model put one first, or wrote the user's
    # name as a greeting ("Noa, I am excited ...").
    # Nothing known of the user, a review is still written as them: told only the request, the
    # device model refused it.
    unknown = PrivateContext(writing=True, review=True)
    assert unknown.empty and unknown.render().splitlines() == [
        review.render().splitlines()[0].replace("Jonas", "the user"),
        "This one is a review: start with what you think of it.",
    ]
    prompt = build_prompt("Review my kettle.", unknown)
    assert prompt.private != prompt.public and prompt.writing
    post = PrivateContext(writer="Jonas", sign_off="Talk soon, Jonas", writing=True)
    assert len(post.render().splitlines()) == 1 and "Jonas" not in post.request("A post.")
    assert post.request("A post.") == (
        "A post.\n(Write the text itself, in the first person, ready to post.)"
    )


def test_an_answer_is_addressed_to_the_user() -> None:
    context = PrivateContext(writer="", memories=("I am vegetarian.",), writing=False)
    assert context.render().splitlines() == [
        "You are the user's assistant, talking with the user. Answer the user directly as "
        '"you", in your own words, without a greeting. Use what you know about the user where '
        "it helps; do not repeat it back.",
        "What you know about the user:",
        "- You are vegetarian.",
    ]
    assert context.request("What could I cook?") == "What could I cook?"
    assert PrivateContext().render() == "" and PrivateContext().empty
    named = PrivateContext(writer="Maya Okafor", memories=("I run.",)).render()
    assert named.startswith("You are Maya's assistant, talking with Maya.")


@pytest.mark.parametrize(
    ("note", "said"),
    [
        ("I am vegetarian and allergic to peanuts.", "You are vegetarian and allergic to peanuts."),
        ("My sister Lena loves me; I'm proud of mine.", "Your sister Lena loves you; you're proud of yours."),
        ("Long runs are on Saturday mornings, I was told.", "Long runs are on Saturday mornings, you were told."),
        ("  I  cook\nmyself. ", "You cook yourself."),
        ("maya keeps bees; I help.", "maya keeps bees; you help."),
    ],
)  # fmt: skip
def test_a_note_is_said_to_its_writer_in_the_second_person(note: str, said: str) -> None:
    assert second_person(note) == said


def test_the_private_view_carries_the_context_and_the_public_view_does_not() -> None:
    context = PrivateContext(writer="Maya", memories=("I keep bees.",), writing=True)
    prompt = build_prompt("Write a note to my neighbour.", context)
    public = prompt.public_dicts()
    assert public == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "Write a note to my neighbour."},
    ]
    private = prompt.private_dicts()
    assert private[0]["content"] == f"{DEFAULT_SYSTEM_PROMPT}\n\n{context.render()}"
    assert private[1]["content"] == context.request("Write a note to my neighbour.")
    assert prompt.context == context.render()
    chat = [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "Write a note to my neighbour."},
    ]
    both = build_prompt(chat, context)
    assert both.private_dicts()[1:3] == chat[:2]  # only the last request is reworded
    assert build_prompt("Hi", PrivateContext()).private == build_prompt("Hi").public


def test_retrieval_keeps_out_what_does_not_bear_and_adds_the_recipient() -> None:
    store = InMemoryStore()
    store.add_many(
        "maya",
        [
            "I cook mushroom risotto most evenings.",
            "My sister Lena lives in Lisbon and loves jazz.",
            "Lena sends me postcards from every concert.",
            "My passport expires in two years.",
        ],
        progress=False,
    )
    hits = select_memories(store, "maya", "cook risotto tonight", policy=RetrievalPolicy())
    assert [h.text for h in hits] == ["I cook mushroom risotto most evenings."]
    lena = Person("Lena", "sister")
    policy = RetrievalPolicy(max_memories=1, min_score=0.9)
    with_her = select_memories(store, "maya", "cook risotto tonight", [lena], policy)
    assert len(with_her) == 2 and "Lena" in with_her[1].text
    # The closest memory is kept even below the floor, so a request always has some context.
    assert len(select_memories(store, "maya", "zzz qqq", policy=policy)) == 1
    assert select_memories(store, "noor", "anything") == []
    kept_out = select_memories(store, "maya", "cook risotto tonight", exclude=[hits[0].id])
    assert "I cook mushroom risotto most evenings." not in [h.text for h in kept_out]
    with pytest.raises(ConfigurationError):
        RetrievalPolicy(max_memories=0)
    with pytest.raises(ConfigurationError):
        RetrievalPolicy(min_score=2.0)


def test_what_the_user_does_on_the_day_a_request_plans_comes_first() -> None:
    store = InMemoryStore()
    store.add_many(
        "maya",
        [
            "I plan my morning around night shifts on Thursdays.",
            "My long runs are on Saturdays.",
            "I plan my morning coffee carefully.",
        ],
        progress=False,
    )
    hits = select_memories(store, "maya", "Plan my Saturday morning.")
    assert hits[0].text == "My long runs are on Saturdays."
    assert len(hits) == 3  # the others keep their places after it
    plain = select_memories(store, "maya", "Plan my morning.")
    assert plain[0].text != "My long runs are on Saturdays."


@pytest.mark.parametrize(
    ("note", "about_others"),
    [
        ("My sister Lena lives in Lisbon; she loves jazz.", True),
        ("My best friend Inês loves cycling.", True),
        ("Lena is vegetarian.", True),
        ("Gabriela (my partner) and I celebrate at Ramen Tetsu.", False),
        ("My neighbour Lena looks after Churro whenever I am away.", False),
        ("My landlord, Ms Levi, has not fixed the radiator in my flat.", False),
        ("I cook mushroom risotto most evenings.", False),
        ("Jazz is on every Friday.", False),  # names nobody
        ("My piano lesson with Ms Levi is on Thursday evenings.", False),  # "my" of the user's
    ],
)
def test_a_memory_about_another_person_alone(note: str, about_others: bool) -> None:
    people = [Person("Lena", "sister"), Person("Inês", "best friend"), Person("Ms Levi", "x")]
    assert _about_others(note, [*people, Person("Gabriela", "partner")]) is about_others


def test_a_note_about_someone_the_request_does_not_concern_is_left_out() -> None:
    store = InMemoryStore()
    dish = "I cook mushroom risotto most evenings."
    sister = "My sister Lena cooks risotto in Lisbon."
    store.add_many("maya", [dish, sister, "My passport expires soon."], progress=False)
    lena = Person("Lena", "sister")
    policy = RetrievalPolicy(min_score=0.0, about_others_score=0.99)
    assert [h.text for h in select_memories(store, "maya", "cook risotto", policy=policy)][:2] == [
        dish,
        sister,
    ]
    without = select_memories(store, "maya", "cook risotto", policy=policy, others=[lena])
    assert sister not in [h.text for h in without] and without[0].text == dish
    # Close enough to the request, or the closest memory of all, it stays.
    close = RetrievalPolicy(min_score=0.0, about_others_score=0.0)
    assert sister in [
        h.text for h in select_memories(store, "maya", "cook risotto", policy=close, others=[lena])
    ]
    assert (
        select_memories(store, "maya", "Lena Lisbon", policy=policy, others=[lena])[0].text
        == sister
    )
    with pytest.raises(ConfigurationError):
        RetrievalPolicy(about_others_score=1.5)


def test_notes_on_the_day_or_about_the_recipient_are_never_left_out_as_about_others() -> None:
    store = InMemoryStore()
    shifts = "I have night shifts on Thursdays."
    levi = "Ruth Levi is allergic to lilies; Dan Levi drives on Thursday."
    store.add_many("maya", [shifts, levi, "My passport expires soon."], progress=False)
    ruth, dan = Person("Ruth Levi", "mother"), Person("Dan Levi", "father")
    policy = RetrievalPolicy(min_score=0.0, about_others_score=0.99, about_recipient=0)
    # Names Thursday, the day the request plans: it comes, whatever its similarity.
    request = "Plan my night shifts on Thursday."
    plan = select_memories(store, "maya", request, policy=policy, others=[ruth, dan])
    assert plan[0].text == shifts
    assert levi in [h.text for h in plan]
    # Names the recipient too (the surname the two share must not count against her).
    gift = select_memories(store, "maya", "night shifts gift", [ruth], policy, others=[dan])
    assert gift[0].text == shifts and levi in [h.text for h in gift]


def test_only_an_answer_leaves_out_notes_about_people_it_does_not_concern() -> None:
    store = InMemoryStore()
    sister = "My sister Lena cooks risotto in Lisbon."
    store.add_many("maya", ["I cook mushroom risotto most evenings.", sister], progress=False)
    assistant = Assistant(tiny_backend(0), memory=store, user_id="maya", privacy=False)
    assistant.retrieval = RetrievalPolicy(min_score=0.0, about_others_score=0.99)
    assert sister not in assistant.private_context("What risotto could I cook tonight?").memories
    assert sister in assistant.private_context("Write my partner a note about risotto.").memories
    assert sister in assistant.private_context("What risotto does my sister cook?").memories
    assert (
        sister in assistant.private_context("What risotto could I cook tonight for Lena?").memories
    )


def _words(text: str) -> int:
    return len(text.split())


def test_memories_fit_the_budget_and_a_long_one_keeps_its_opening() -> None:
    review = (
        "Good blender, loud motor. It crushes frozen fruit in seconds. The jar is glass. "
        "The downside is the noise."
    )
    short = "I make smoothies every morning."
    # Whole when they fit: as written, most relevant first.
    assert fit_memories([review, short], 100, _words) == [review, short]
    # "- Good blender, loud motor. It crushes frozen fruit in seconds." is 11 words: the long
    # review keeps the sentences that fit rather than leaving the prompt.
    opening = "Good blender, loud motor. It crushes frozen fruit in seconds."
    assert fit_memories([review, short], 12, _words) == [opening]
    assert fit_memories([short, review], 12, _words) == [short, "Good blender, loud motor."]
    assert fit_memories([short, review], 9, _words) == [short]  # not even its first sentence
    assert fit_memories(["one long sentence with no end at all"], 4, _words) == []
    assert fit_memories([], 10, _words) == []


def test_the_assistant_keeps_the_opening_of_a_long_memory() -> None:
    store = InMemoryStore()
    long_review = " ".join(f"The kettle boils water in {n} minutes." for n in range(2, 60))
    store.add_many("maya", [long_review], progress=False)
    assistant = Assistant(
        tiny_backend(0), memory=store, user_id="maya", privacy=False, context_tokens=64
    )
    (kept,) = assistant.private_context("Write my review of the kettle.").memories
    assert long_review.startswith(kept) and kept.endswith("minutes.")
    assert (
        len(assistant.device.encode(f"- {kept}")) <= 64 < len(assistant.device.encode(long_review))
    )


def test_the_assistant_reads_sets_and_uses_the_persona() -> None:
    store = InMemoryStore()
    store.add_many(
        "maya",
        ["My sister Lena lives in Lisbon and loves jazz.", "I sign my messages 'Love, Maya'."],
        progress=False,
    )
    assistant = Assistant(tiny_backend(0), memory=store, user_id="maya", privacy=False)
    view = assistant.persona()
    assert view.persona.name == "Maya" and view.source("Lena") == "inferred"
    context = assistant.private_context("Write a birthday message for my sister.")
    assert (context.writer, context.sign_off, context.writing) == ("Maya", "Love, Maya", True)
    assert context.recipients == (Person("Lena", "sister"),)
    assert "My sister Lena lives in Lisbon and loves jazz." in context.memories
    assert assistant.retrieve("Write a birthday message for my sister.") == context.render()
    # The note the sign-off was read from is not listed for a text the user sends (the
    # persona signs it); an answer to the user still gets it where it bears on the request.
    sign_note = "I sign my messages 'Love, Maya'."
    to_send = assistant.private_context("Write my sister a message, signed as I sign my messages.")
    assert to_send.writing and to_send.closing == "Love, Maya"
    assert sign_note not in to_send.memories
    assert sign_note in assistant.private_context("How do I sign my messages?").memories

    after = assistant.set_persona(Persona(name="Maya Okafor"))
    assert after.persona.name == "Maya Okafor" and after.source("name") == "set"
    assert assistant.private_context("Plan my Saturday.").writer == "Maya Okafor"
    without = Assistant(tiny_backend(0), privacy=False)
    assert without.private_context("Hi") == PrivateContext()
    with pytest.raises(ConfigurationError, match="no memory store"):
        without.persona()
