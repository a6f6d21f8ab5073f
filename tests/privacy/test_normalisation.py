"""The guard sees what a reader sees: Unicode tricks, parts of private words, spaced-out secrets,
and PII typed with unusual separators. Tables of text and what must (or must not) be found,
near-misses included."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict

from specsteer import PrivacyViolation
from specsteer.privacy import AuditLog, EgressGuard
from specsteer.privacy._normalize import fold

SENTENCE = "the spare key hides under the blue flowerpot tonight"
MEMORIES = [
    f"Note to self: {SENTENCE}.",
    "My accountant is Chidi Okafor-Lindqvist.",
    "Meet me at the Harbourview office on Friday.",
    "The wifi password is Tortellini-Banana-77",
]
SHY, ZWSP, NBSP = "\u00ad", "\u200b", "\u00a0"


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str


def _guard() -> EgressGuard:
    guard = EgressGuard(audit_log=AuditLog(), allowed_types=(Request,))
    guard.set_private_texts(MEMORIES)
    return guard


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _found(text: str) -> list[tuple[str, str]]:
    """(entity, the original characters it covers) for each finding of the guard's screen."""
    screened = _guard().screen_text(text)
    return [(f.span.entity, text[f.span.start : f.span.end]) for f in screened.findings]


DISGUISED = [
    (
        "soft hyphens",
        SENTENCE.replace("flowerpot", f"flower{SHY}pot").replace("spare", f"sp{SHY}are"),
    ),
    ("zero-width spaces", SENTENCE.replace("key", f"k{ZWSP}ey").replace("blue", f"bl{ZWSP}ue")),
    ("three Cyrillic letters", SENTENCE.replace("spare", "sраre").replace("hides", "hidеs")),
    (
        "Greek omicron and alpha",
        SENTENCE.replace("flowerpot", "flοwerpοt").replace("spare", "spαre"),
    ),
    ("full-width letters", _fullwidth(SENTENCE)),
    ("non-breaking spaces", SENTENCE.replace(" ", NBSP)),
]


@pytest.mark.parametrize(("how", "text"), DISGUISED, ids=[h for h, _ in DISGUISED])
def test_a_disguised_private_sentence_is_found_whole(how: str, text: str) -> None:
    assert _found(f"Sure: {text}!") == [("PRIVATE_TEXT", text)]


@pytest.mark.parametrize(
    "text",
    [
        _fullwidth("the weather is lovely in Lisbon this week"),
        "Καλημέρα, τι κάνεις σήμερα;",  # Greek, folded to Latin look-alikes, still ordinary
        f"a shy{SHY}ness that no{ZWSP}body minds",
        "раssроrt",  # a Latin word in Cyrillic look-alikes that no memory holds
    ],
)
def test_near_misses_in_other_scripts_are_not_flagged(text: str) -> None:
    assert _found(text) == []


PARTS = [
    ("ask Chidi about Lindqvist", [("PRIVATE_TOKEN", "Lindqvist")]),
    ("my accountant Okafor said so", [("PRIVATE_TOKEN", "Okafor")]),
    ("the Okafor-Lindqvist file", [("PRIVATE_TOKEN", "Okafor-Lindqvist")]),
    ("see the Lindqvist-Berg report", [("PRIVATE_TOKEN", "Lindqvist")]),
    ("the Harbourviews office", [("PRIVATE_TOKEN", "Harbourviews")]),
    ("the HARBOURVIEW lobby", [("PRIVATE_TOKEN", "HARBOURVIEW")]),
    ("the wifi is tortellini banana 77", [("PRIVATE_TOKEN", "tortellini banana 77")]),
    ("type Tortellini Banana77 now", [("PRIVATE_TOKEN", "Tortellini Banana77")]),
    # near-misses: ordinary words beside them, a different name, an ordinary plural
    ("ask Chidi about Lindholm", []),
    ("my accountant said so", []),
    ("we walked along the harbour and enjoyed the views", []),
    ("pepper and banana bread for 77 guests", []),
    ("I ate a banana at 7", []),
]


@pytest.mark.parametrize(("text", "expected"), PARTS, ids=[t for t, _ in PARTS])
def test_parts_stems_and_spaced_out_private_words(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert _found(text) == expected


PII = [
    ("card 4111.1111.1111.1111 expires", [("CREDIT_CARD", "4111.1111.1111.1111")]),
    ("card 4111/1111/1111/1111 ok", [("CREDIT_CARD", "4111/1111/1111/1111")]),
    ("card 4111  1111  1111  1111 ok", [("CREDIT_CARD", "4111  1111  1111  1111")]),
    (
        f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111 ok",
        [("CREDIT_CARD", f"4111{NBSP}1111{NBSP}1111{NBSP}1111")],
    ),
    ("iban de89 3704 0044 0532 0130 00 ok", [("IBAN_CODE", "de89 3704 0044 0532 0130 00")]),
    ("iban de89370400440532013000 ok", [("IBAN_CODE", "de89370400440532013000")]),
    ("ssn 219.09.9998 ok", [("US_SSN", "219.09.9998")]),
    ("write to ada＠example.com today", [("EMAIL_ADDRESS", "ada＠example.com")]),
    (
        f"call +44{NBSP}20{NBSP}7946{NBSP}0958 now",
        [("PHONE_NUMBER", f"+44{NBSP}20{NBSP}7946{NBSP}0958")],
    ),
    # near-misses
    ("card 4111.1111.1111.1112 fails Luhn", []),
    ("iban de89 3704 0044 0532 0130 01 fails mod 97", []),
    ("ssn 666.12.3456 is never issued", []),
    ("release 2.4.1 on 2024.05.06", []),
    ("ada at example dot com", []),
    ("room 12.30.2024", []),
]


@pytest.mark.parametrize(("text", "expected"), PII, ids=[t for t, _ in PII])
def test_pii_typed_with_unusual_separators(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


def test_the_payload_scan_folds_too() -> None:
    """A disguised sentence is refused at the door as well, not only screened."""
    sent: list[bytes] = []
    for _, text in DISGUISED:
        body = json.dumps({"query": text}).encode()
        with pytest.raises(PrivacyViolation):
            _guard().send(Request(query=text), "cloud", sent.append, encode=lambda _, b=body: b)
    assert sent == []


def test_folded_spans_map_back_to_what_was_typed() -> None:
    text = f"x ｌｉ{SHY}ｓｂｏｎ y"
    folded = fold(text)
    assert folded.text == "x lisbon y"
    start = folded.text.index("lisbon")
    assert text[slice(*folded.original(start, start + 6))] == f"ｌｉ{SHY}ｓｂｏｎ"
    assert fold("plain ascii").origin == ()
