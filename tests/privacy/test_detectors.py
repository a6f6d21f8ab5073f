"""Detector tables: text, expected (substring, entity) spans, and near-misses that must not match."""

from __future__ import annotations

import pytest

from specsteer import InvalidInputError
from specsteer.privacy import (
    NameDetector,
    Pattern,
    PatternDetector,
    Span,
    detect,
    iban_checksum_ok,
    luhn_ok,
)

# (text, [(substring, entity), ...]) — every expected span, in order; [] means nothing matches.
TABLE: list[tuple[str, list[tuple[str, str]]]] = [
    # email
    ("mail jane.doe@example.co.uk today", [("jane.doe@example.co.uk", "EMAIL_ADDRESS")]),
    ("write to a+tag@sub.example.org.", [("a+tag@sub.example.org", "EMAIL_ADDRESS")]),
    ("user@localhost is not routable", []),
    ("the @ sign and foo@ alone", []),
    ("a@b.c has a 1-letter tld", []),
    # phone
    ("call +44 20 7946 0958 now", [("+44 20 7946 0958", "PHONE_NUMBER")]),
    ("or (415) 555-0132 after six", [("(415) 555-0132", "PHONE_NUMBER")]),
    ("fax 415.555.0199", [("415.555.0199", "PHONE_NUMBER")]),
    ("call me at +31 6 1234 5678 today", [("+31 6 1234 5678", "PHONE_NUMBER")]),
    ("mobile 06-12345678.", [("06-12345678", "PHONE_NUMBER")]),
    ("office 020 555 1234", [("020 555 1234", "PHONE_NUMBER")]),
    ("release 0.12.3456 is out", []),
    ("the date 2024-01-15 is not a phone", []),
    ("room 12 345", []),
    # payment card (Luhn)
    ("card 4111 1111 1111 1111 expires", [("4111 1111 1111 1111", "CREDIT_CARD")]),
    ("amex 3782-822463-10005", [("3782-822463-10005", "CREDIT_CARD")]),
    ("pan 5555555555554444.", [("5555555555554444", "CREDIT_CARD")]),
    ("bad luhn 4111 1111 1111 1112", []),
    ("all zeros 0000 0000 0000 0000", []),
    ("too short 4111 1111 111", []),
    # IBAN (mod 97)
    ("pay DE89 3704 0044 0532 0130 00 please", [("DE89 3704 0044 0532 0130 00", "IBAN_CODE")]),
    ("GB82WEST12345698765432", [("GB82WEST12345698765432", "IBAN_CODE")]),
    ("bad checksum DE88 3704 0044 0532 0130 00", []),
    ("wrong length DE89 3704 0044 0532 0130", []),
    # IP addresses
    ("host 192.168.1.20.", [("192.168.1.20", "IP_ADDRESS")]),
    ("v6 2001:db8::8a2e:370:7334 up", [("2001:db8::8a2e:370:7334", "IP_ADDRESS")]),
    ("octet out of range 999.1.1.1", []),
    ("256.10.10.10 neither", []),
    ("version 1.2.3.4.5", []),
    ("at 12:30:45 in std::vector", []),
    # US SSN (invalid ranges excluded)
    ("ssn 123-45-6788 on file", [("123-45-6788", "US_SSN")]),
    ("ssn 078 05 1121", [("078 05 1121", "US_SSN")]),
    ("area 000-12-3456", []),
    ("area 666-12-3456", []),
    ("area 912-12-3456", []),
    ("group 123-00-4567", []),
    ("serial 123-45-0000", []),
    ("mixed separators 123-45 6789", []),
    ("advertising 078-05-1120", []),
    # UK NINO
    ("NI AB 12 34 56 C", [("AB 12 34 56 C", "UK_NINO")]),
    ("never issued GB123456A", []),
    # street address
    ("I live at 221 Baker Street, London", [("221 Baker Street", "STREET_ADDRESS")]),
    ("office: 1600 Pennsylvania Ave.", [("1600 Pennsylvania Ave.", "STREET_ADDRESS")]),
    ("Hauptstraße 5, Berlin", [("Hauptstraße 5", "STREET_ADDRESS")]),
    ("in 2024 Street Fighter returned", []),
    ("3 Big Problems", []),
    # mixed: one span per region, sorted
    (
        "jane@example.com, 4111111111111111, 10.0.0.1",
        [
            ("jane@example.com", "EMAIL_ADDRESS"),
            ("4111111111111111", "CREDIT_CARD"),
            ("10.0.0.1", "IP_ADDRESS"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t for t, _ in TABLE])
def test_detector_table(text: str, expected: list[tuple[str, str]]) -> None:
    spans = detect(text)
    got = [(text[s.start : s.end], s.entity) for s in spans]
    assert got == expected
    for s in spans:
        assert 0 < s.score <= 1


def test_spans_are_offsets_into_the_text() -> None:
    text = "x jane@example.com y"
    [span] = detect(text)
    assert span == Span(2, 18, "EMAIL_ADDRESS", span.score)


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("4111111111111111", True),
        ("79927398713", False),
        ("4012888888881881", True),
        ("4012888888881882", False),
    ],
)
def test_luhn(number: str, ok: bool) -> None:
    assert luhn_ok(number) is ok


@pytest.mark.parametrize(
    ("iban", "ok"),
    [
        ("DE89370400440532013000", True),
        ("FR1420041010050500013M02606", True),
        ("NL91ABNA0417164300", True),
        ("NL91ABNA0417164301", False),
        ("XX00", False),
    ],
)
def test_iban_checksum(iban: str, ok: bool) -> None:
    assert iban_checksum_ok(iban) is ok


def test_custom_pattern_detector_is_data() -> None:
    employee = PatternDetector("EMPLOYEE_ID", [Pattern("emp", r"\bEMP-\d{5}\b", 0.9)])
    assert [(s.start, s.end, s.entity) for s in detect("id EMP-12345!", [employee])] == [
        (3, 12, "EMPLOYEE_ID")
    ]
    assert detect("id EMP-1234", [employee]) == []


def test_bad_pattern_data_fails_early() -> None:
    with pytest.raises(InvalidInputError, match="invalid regex"):
        Pattern("broken", r"(", 0.5)
    with pytest.raises(InvalidInputError, match="score"):
        Pattern("x", r"x", 1.5)


def test_name_detector_whole_words_case_insensitive() -> None:
    names = NameDetector(["Ada Lovelace", "Ada"])
    text = "ada  lovelace met Ada; Adam did not"
    got = [(text[s.start : s.end], s.entity) for s in names.analyze(text)]
    assert got == [("ada  lovelace", "PERSON"), ("Ada", "PERSON")]
