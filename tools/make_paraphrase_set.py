"""Write the paraphrase set, ``sdk/data/personal_requests.jsonl``: personal writing requested in
the user's own words.

Six kinds of personal writing (a product review, an email to the landlord, a birthday message, a
thank-you note, a text to a friend, a social media post), each asked for in six phrasings: an
order, a statement of need, a question, a terse note, an "in my own words" request, and a
request for help. Each (kind, phrasing) is one example of its own synthetic user, drawn as the
shipped personal-writing set draws them (``tools/make_eval_set.py``), with a product the user
bought and what they think of it added to their history. The layout is that set's: ``input``,
``profile``, reference ``output``, ``facts``, ``writer``, ``recipient``; plus ``kind`` and
``phrasing`` (its index), which the loader ignores.

Deterministic (one seeded ``random.Random``, no network, no models); a test regenerates the
file and compares the bytes.

Usage::

    python tools/make_paraphrase_set.py              # rewrite the shipped file
    python tools/make_paraphrase_set.py --out FILE --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_eval_set as base  # noqa: E402  (a sibling script, not a package)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "sdk" / "data" / "personal_requests.jsonl"
DEFAULT_SEED = 2027

#: product | what the user likes | what they do not | the two facts a review should carry
PRODUCTS: tuple[tuple[str, ...], ...] = base._table("""
Kestrel kettle | it boils in under two minutes and is quiet | the lid sticks when it is hot | quiet; lid
Nordlys head torch | it is bright and weighs almost nothing | the strap slips when it is wet | bright; strap
Tern folding umbrella | it survived a proper storm without turning inside out | it is heavy for its size | storm; heavy
Okapi running shoes | they stay comfortable on long runs | the laces keep coming undone | comfortable; laces
Brisa desk fan | it is silent at night | the remote feels flimsy | silent; remote
Pella cast-iron pan | it sears evenly on every burner | it is very heavy to lift with one hand | evenly; heavy
Lumo reading lamp | the warm light is easy on the eyes | the clamp scratched my desk | warm light; clamp
Atlas day backpack | the pockets are exactly where I need them | the main zip is stiff | pockets; zip
Fika coffee grinder | it grinds evenly for espresso | it is loud in the morning | evenly; loud
Corvo rain jacket | it kept me dry in a downpour | the hood is too small | dry; hood
Mizu water bottle | it keeps drinks cold all day | the cap leaks if it tips over | cold; cap
Sable wireless earbuds | the battery lasts a whole week of commuting | they fall out when I run | battery; fall out
""")

KINDS: dict[str, tuple[str, ...]] = {
    "review": (
        'Write my product review of "{product}". I rated it {stars} out of 5 stars.',
        'I bought "{product}" and I give it {stars} stars. Draft the review text I will post, '
        "in my own words.",
        "Can you help me write a {stars}-star review of my {product}?",
        "review for the {product}, {stars}/5",
        "I want to leave a review of the {product} I bought. I'd give it {stars} stars.",
        "Help me put into words what I think of the {product} for the shop's website "
        "({stars} stars).",
    ),
    "landlord": (
        "Email my landlord about the repair in my flat.",
        "I need to write to my landlord about something broken in my flat.",
        "Can you draft an email to my landlord asking for a repair?",
        "landlord email - the thing in my flat still isn't fixed",
        "Compose a polite email chasing my landlord about the overdue repair, in my own words.",
        "Help me ask my landlord, by email, to finally fix the problem in my flat.",
    ),
    "birthday": (
        "Write a birthday message for my {rel}.",
        "It's my {rel}'s birthday soon and I want to send a message.",
        "Can you help me wish my {rel} a happy birthday?",
        "birthday text to my {rel} pls",
        "Draft the birthday card I'll give my {rel}, written the way I write.",
        "Help me write something sweet for my {rel}'s birthday.",
    ),
    "thank_you": (
        "Write a thank-you note to my neighbour for minding my pet.",
        "My neighbour looked after my pet while I was away. I'd like to thank them.",
        "Could you write a note I can leave for my neighbour to say thanks for pet-sitting?",
        "thank-you card for my neighbour (pet-sitting)",
        "Put my thanks to my neighbour for watching my pet into a short note, in my own words.",
        "Help me thank my neighbour for taking care of my pet.",
    ),
    "friend": (
        "Text my best friend about plans for this weekend.",
        "I want to make plans with my best friend for this weekend.",
        "Can you draft a message to my best friend suggesting we meet up this weekend?",
        "msg to my best friend: weekend plans?",
        "Write the text I'll send my best friend to plan the weekend, in my own words.",
        "Help me ask my best friend to hang out this weekend.",
    ),
    "post": (
        "Write a social media post about my upcoming trip.",
        "I want to tell my followers about the trip I'm taking next month.",
        "Can you write a short Instagram caption announcing my next trip?",
        "post for my followers about my holiday plans",
        "Draft a post about my next trip that sounds like me.",
        "Help me share my travel plans in a short post.",
    ),
}


def _review(product: tuple[str, ...], stars: int) -> base.Draft:
    name, good, bad, facts = product
    clauses = (
        (
            f"I have used the {name} every day since I bought {'them' if name.endswith('s') else 'it'}",
            False,
        ),
        (good[0].upper() + good[1:], False),
        (f"My one complaint is that {bad}", False),
        (f"{stars} out of 5 from me, and I would buy it again", False),
    )
    return base.Draft(None, clauses, "", tuple(f.strip() for f in facts.split(";")))


def _post(u: base.User) -> base.Draft:
    dest, activity, gear1, gear2 = u.trip
    clauses = (
        (f"Next month I am off to {dest} to {activity}", False),
        (f"The {gear1} and the {gear2} are already packed", False),
        ("Tips from anyone who has been there are very welcome", False),
        ("I cannot wait to share the photos with you all", True),
    )
    return base.Draft(None, clauses, "", (dest, gear1))


def _draft(
    kind: str, u: base.User, rng: random.Random, product: tuple[str, ...], stars: int
) -> base.Draft:
    """The reference of one kind for one user (the shipped set's own task where there is one)."""
    tasks: dict[str, Callable[[], base.Draft]] = {
        "review": lambda: _review(product, stars),
        "landlord": lambda: base._landlord(u, rng)[1],
        "birthday": lambda: base._birthday(u, rng)[1],
        "thank_you": lambda: base._thank_you(u, rng)[1],
        "friend": lambda: base._weekend(u, rng)[1],
        "post": lambda: _post(u),
    }
    return tasks[kind]()


def _example(index: int, kind: str, phrasing: int, rng: random.Random) -> dict[str, object]:
    user = base._draw_user(rng, index)
    product = rng.choice(PRODUCTS)
    stars = rng.choice((3, 4, 5))
    month = rng.choice(base.MONTHS)
    name, good, bad, _ = product
    profile_texts = [
        *base._profile_texts(user, rng),
        f"I bought the {name} in {month}: {good}, but {bad}.",
    ]
    rng.shuffle(profile_texts)
    draft = _draft(kind, user, rng, product, stars)
    query = KINDS[kind][phrasing].format(product=name, stars=stars, rel=user.sibling[1])
    example: dict[str, object] = {
        "id": f"r{index:03d}-{kind}-{phrasing}",
        "user_id": f"r{index:03d}",
        "kind": kind,
        "phrasing": phrasing,
        "input": query,
        "profile": [
            {"id": f"r{index:03d}-p{i:02d}", "text": text} for i, text in enumerate(profile_texts)
        ],
        "output": base.render(user, draft),
        "facts": list(draft.facts),
        "writer": user.name,
    }
    if draft.to is not None:
        example["recipient"] = draft.to
    base._check(example)
    return example


def build(seed: int = DEFAULT_SEED) -> list[dict[str, object]]:
    """Every (kind, phrasing) once, each for a user of its own."""
    rng = random.Random(seed)
    pairs = [(kind, i) for kind in KINDS for i in range(len(KINDS[kind]))]
    return [_example(n, kind, i, rng) for n, (kind, i) in enumerate(pairs, start=1)]


def render_jsonl(seed: int = DEFAULT_SEED) -> bytes:
    """The file's exact bytes: one JSON object per line, UTF-8."""
    lines = [json.dumps(e, ensure_ascii=False) for e in build(seed)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    """Write the set (see the module docstring for the options)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(render_jsonl(args.seed))


if __name__ == "__main__":
    main()
