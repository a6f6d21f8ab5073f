"""How often does the egress guard flag ordinary English? A measuring tool and its corpus.

The corpus is generated, deterministically, from sentence templates about everyday life (plans,
errands, travel, family, money, weather) with words a guard is easy to fool with: inflections
with doubled consonants ("planning", "travelled"), British spellings ("harbour", "organised"),
modern words ("laptop", "podcast"), and the numbers ordinary text is full of (years, times,
prices, counts, distances, room and bus numbers).

The memory set is every profile memory of the shipped personal-writing dataset
(``specsteer/data/personal_writing.jsonl``, 42 users), loaded all at once: a superset of any
one user's memories, so the rate it gives is an upper bound on the per-user rate.

Run it to print the figures; ``--per-user`` adds the mean and worst rate over users loaded one
at a time, ``--other-users`` the rate on the dataset's reference answers written for the other
users (real coincidences of names and phrases between users count there)::

    .venv/bin/python tests/privacy/false_alarms.py
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from specsteer.cloud_adapter import VerifyRequest
from specsteer.privacy import AuditLog, EgressGuard

SUBJECTS = (
    "I", "We", "My sister", "My brother", "Our neighbour", "The kids", "My colleague", "Dad",
    "Mum", "My partner", "The team", "Grandma", "Our landlord", "The teacher", "My flatmate",
    "Everyone", "The doctor", "My best friend", "Our manager", "The plumber",
)  # fmt: skip
PAST = (
    "planned", "stopped by", "travelled to", "cancelled", "shopped at", "jogged past",
    "chatted about", "dropped off", "grabbed", "admitted", "preferred", "regretted", "swapped",
    "skipped", "tidied", "organised", "apologised for", "realised", "fixed", "booked", "visited",
    "forgot", "bought", "cleaned", "painted", "recommended", "mentioned", "finished", "labelled",
    "queued for", "signalled", "unpacked", "emptied", "hurried to", "enjoyed",
)  # fmt: skip
GERUNDS = (
    "planning the trip", "running errands", "swimming at the leisure centre",
    "shopping for groceries", "travelling abroad", "getting ready for the wedding",
    "sitting in traffic", "jogging along the harbour", "chatting with old friends",
    "cancelling the booking", "setting up the new laptop", "listening to a podcast",
    "baking sourdough", "decorating the living room", "organising the garage",
    "budgeting for the holidays", "practising the piano", "revising for exams",
    "travelling for work", "babysitting the twins", "cycling to the office",
    "stopping at the pharmacy", "queueing at the post office", "catching up on emails",
    "mowing the lawn", "looking after the neighbour's dog", "getting the car serviced",
)  # fmt: skip
PLACES = (
    "the harbour", "the city centre", "the theatre", "the library", "the supermarket",
    "the railway station", "the park", "the beach", "the office", "the gym", "the bakery",
    "the market", "the museum", "the airport", "the high street", "the garden centre",
    "the swimming pool", "the town hall", "the dentist", "the cinema", "the pub",
    "the farmers' market", "the hospital", "the school gates", "the bus stop",
    "London", "Paris", "Rome", "Berlin", "Madrid", "New York", "Tokyo", "Sydney", "Toronto",
    "Chicago", "Lisbon", "Dublin", "Amsterdam", "Vienna", "Barcelona", "Edinburgh",
)  # fmt: skip
TIMES = (
    "on Monday", "last weekend", "next month", "this morning", "at 7:30", "at half past six",
    "in 2024", "in March", "on 12 May", "around 10 o'clock", "tonight", "two years ago",
    "since 2019", "by Friday", "on the 3rd", "at 18:45", "in the autumn", "over Christmas",
    "after lunch", "before 9am", "on 21 June 2025", "every other Tuesday", "in 2026",
)  # fmt: skip
OBJECTS = (
    "the shopping list", "a birthday present", "the electricity bill", "the laundry",
    "a new laptop", "the car", "the washing machine", "the dishes", "the quarterly report",
    "a sourdough loaf", "the theatre tickets", "a good book", "my favourite mug",
    "some colourful flowers", "the neighbour's parcel", "the spare keys", "the recycling",
    "the holiday photos", "a second-hand bike", "the curtains", "the spreadsheet",
    "the barbecue", "a cheque", "the programme", "the jewellery box", "a tyre",
)  # fmt: skip
ADJECTIVES = (
    "lovely", "tired", "busy", "delighted", "worried", "grateful", "exhausted", "excited",
    "organised", "relaxed", "disappointed", "cheerful", "crowded", "quiet", "freezing",
    "sunny", "humid", "chilly", "wonderful", "awful",
)  # fmt: skip
AMOUNTS = (
    "£12.50", "$40", "€15", "£3.99", "$1,200", "€250", "£7", "30%", "half the price",
    "£18 a month", "$9.95", "€1.80", "£325,000", "$2.5 million",
)  # fmt: skip
COUNTS = ("2", "3", "12", "45", "150", "1,500", "two", "five", "a dozen", "20", "100", "8")
UNITS = (
    "people", "minutes", "km", "miles", "steps", "pages", "emails", "tickets", "guests",
    "photos", "boxes", "kilos", "metres", "laps", "hours",
)  # fmt: skip
NUMBERED = (
    "room 214", "platform 9", "the number 38 bus", "page 112", "chapter 7", "gate B12",
    "seat 14C", "flat 3", "table 6", "the 8:15 train", "junction 4", "aisle 5",
)  # fmt: skip

TEMPLATES = (
    "{Subject} {past} {object} {time}.",
    "{Subject} {past} {place} {time}.",
    "We are {gerund} {time}.",
    "I have been {gerund} since {year}.",
    "Could you remind me about {object} {time}?",
    "The queue at {place} was {adjective}, so we waited {count} {unit}.",
    "It cost {amount} for {count} {unit}, which felt {adjective}.",
    "Meet me at {place} at {clock}; we are in {numbered}.",
    "My favourite colour is {colour}, but {subject} {past} {object}.",
    "Thanks for {gerund}; {subject} really {past} it.",
    "There were {count} {unit} at {place} {time}.",
    "The weather in {place} was {adjective} and about {temp} degrees.",
    "Please don't forget {object}, we need it {time}.",
    "Have you seen {object} yet? {Subject} {past} it {time}.",
    "In {year} we moved near {place}, and in {year2} {subject} {past} {object}.",
    "{Subject} was {adjective} after {gerund}.",
    "Honestly, {subject} {past} {object} and then {past2} {place}.",
    "What time does {place} open {time}?",
    "We walked {count} {unit} around {place}, then {past} {object}.",
    "The total came to {amount}, so {subject} {past} {object}.",
)  # fmt: skip
COLOURS = ("grey", "green", "navy", "mustard yellow", "burgundy", "turquoise", "lilac")


def _fill(template: str, rng: random.Random) -> str:
    subject = rng.choice(SUBJECTS)
    slots = {
        "Subject": subject,
        "subject": subject if subject == "I" else subject[0].lower() + subject[1:],
        "past": rng.choice(PAST),
        "past2": rng.choice(PAST),
        "gerund": rng.choice(GERUNDS),
        "place": rng.choice(PLACES),
        "time": rng.choice(TIMES),
        "object": rng.choice(OBJECTS),
        "adjective": rng.choice(ADJECTIVES),
        "amount": rng.choice(AMOUNTS),
        "count": rng.choice(COUNTS),
        "unit": rng.choice(UNITS),
        "numbered": rng.choice(NUMBERED),
        "colour": rng.choice(COLOURS),
        "year": str(rng.randrange(1985, 2027)),
        "year2": str(rng.randrange(1985, 2027)),
        "clock": f"{rng.randrange(6, 23)}:{rng.choice(('00', '15', '30', '45'))}",
        "temp": str(rng.randrange(-5, 36)),
    }
    return template.format(**slots)


def ordinary_sentences(n: int = 3000, seed: int = 13) -> list[str]:
    """``n`` distinct ordinary English sentences, the same for the same ``seed``."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen[_fill(rng.choice(TEMPLATES), rng)] = None
    return list(seen)


def _dataset() -> list[dict[str, object]]:
    path = resources.files("specsteer") / "data" / "personal_writing.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def dataset_memories() -> dict[str, list[str]]:
    """Each user's profile memories from the shipped personal-writing dataset."""
    users: dict[str, dict[str, None]] = {}
    for row in _dataset():
        texts = users.setdefault(str(row["user_id"]), {})
        texts.update(dict.fromkeys(p["text"] for p in row["profile"]))  # type: ignore[attr-defined]
    return {user: list(texts) for user, texts in users.items()}


def other_users_sentences(user: str) -> list[str]:
    """The sentences of the dataset's reference answers written for every user but ``user``."""
    return [
        s
        for row in _dataset()
        if row["user_id"] != user
        for s in re.split(r"(?<=[.!?])\s+", str(row["output"]))
        if s.strip()
    ]


@dataclass(frozen=True)
class FalseAlarms:
    """Sentences flagged by the guard, out of how many, and which entities fired."""

    flagged: tuple[int, ...]
    total: int
    entities: Counter[str]

    @property
    def rate(self) -> float:
        """Share of sentences with any finding."""
        return len(self.flagged) / self.total


def false_alarm_rate(sentences: Sequence[str], memories: Iterable[str]) -> FalseAlarms:
    """Screen each sentence with a default guard holding ``memories`` as its private texts."""
    guard = EgressGuard(audit_log=AuditLog(), allowed_types=(VerifyRequest,))
    guard.set_private_texts(memories)
    flagged: list[int] = []
    entities: Counter[str] = Counter()
    for i, sentence in enumerate(sentences):
        findings = guard.screen_text(sentence).findings
        if findings:
            flagged.append(i)
            entities.update(f.span.entity for f in findings)
    return FalseAlarms(tuple(flagged), len(sentences), entities)


def main(argv: Sequence[str]) -> None:
    sentences = ordinary_sentences()
    users = dataset_memories()
    every = [t for texts in users.values() for t in texts]
    union = false_alarm_rate(sentences, every)
    print(
        f"{len(sentences)} sentences, memories of all {len(users)} users ({len(every)} texts) "
        f"loaded at once: {len(union.flagged)} flagged, rate {union.rate:.2%}, "
        f"entities {dict(union.entities)}"
    )
    for i in union.flagged[:20]:
        print("  flagged:", sentences[i])
    if "--per-user" in argv:
        rates = [false_alarm_rate(sentences, texts).rate for texts in users.values()]
        print(f"one user at a time: mean rate {sum(rates) / len(rates):.2%}, max {max(rates):.2%}")
    if "--other-users" in argv:
        runs = [false_alarm_rate(other_users_sentences(u), t) for u, t in users.items()]
        flagged, total = sum(len(r.flagged) for r in runs), sum(r.total for r in runs)
        print(
            f"other users' reference answers, one user's memories at a time: {flagged} of "
            f"{total} sentences flagged, rate {flagged / total:.2%}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
