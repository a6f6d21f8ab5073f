"""Reversible placeholders: consistent within a session, restored on the device."""

from __future__ import annotations

from specsteer.privacy import NameDetector, Pseudonymizer, detect


def test_round_trip_with_consistent_placeholders() -> None:
    p = Pseudonymizer()
    text = "Ask Ada Lovelace (ada@example.com) or call +44 20 7946 0958; ada@example.com again."
    spans = sorted(
        detect(text) + NameDetector(["Ada Lovelace"]).analyze(text), key=lambda s: s.start
    )
    safe = p.pseudonymize(text, spans)
    assert safe == "Ask [PERSON_1] ([EMAIL_1]) or call [PHONE_1]; [EMAIL_1] again."
    assert "ada@example.com" not in safe
    assert p.restore(safe) == text


def test_same_value_same_placeholder_across_calls_and_distinct_values_numbered() -> None:
    p = Pseudonymizer()
    a = p.pseudonymize("x a@example.com", detect("x a@example.com"))
    b = p.pseudonymize("b@example.com, A@EXAMPLE.COM", detect("b@example.com, A@EXAMPLE.COM"))
    assert a == "x [EMAIL_1]"
    assert b == "[EMAIL_2], [EMAIL_1]"
    # A reply from the cloud that reuses placeholders is restored on the device.
    assert (
        p.restore("Write to [EMAIL_2] and cc [EMAIL_1].")
        == "Write to b@example.com and cc a@example.com."
    )


def test_unknown_placeholders_are_left_alone_and_clear_forgets() -> None:
    p = Pseudonymizer()
    p.pseudonymize("a@example.com", detect("a@example.com"))
    assert p.restore("[EMAIL_9] [PHONE_1]") == "[EMAIL_9] [PHONE_1]"
    assert p.mapping == {"[EMAIL_1]": "a@example.com"}
    p.clear()
    assert p.restore("[EMAIL_1]") == "[EMAIL_1]"
