"""Near-copies of private identifiers: dropped, changed or regrouped digits, split or embedded."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from specsteer import PrivacyViolation
from specsteer.privacy import AuditLog, EgressGuard, OverlapIndex
from specsteer.privacy._nearcopy import is_near_copy, runs

MEMORY = (
    "Rent goes from my account DE89 3704 0044 0532 0130 00 on the 1st; "
    "the landlord's phone is +44 20 7946 0958 and the booking code is XK72-PQ91."
)


class Draft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    prefix: str = ""
    draft: str = ""


def _flagged(text: str) -> list[str]:
    index = OverlapIndex()
    index.add([MEMORY])
    return [text[s.start : s.end] for s in index.find(text)]


@pytest.mark.parametrize(
    ("text", "copied"),
    [
        # the IBAN with two characters dropped, at the end and in the middle
        ("Pay to DE89 3704 0044 0532 0130 now", "DE89 3704 0044 0532 0130"),
        ("Pay to DE89 3704 044 0532 013 00 now", "DE89 3704 044 0532 013 00"),
        ("Pay to DE893704004405320130 now", "DE893704004405320130"),
        # the account number alone, or embedded in other text
        ("account 0532013000 it is", "0532013000"),
        ("ref ACCT0532013000/2024 ok", "ACCT0532013000/2024"),
        ("the number is 05320130-00.", "05320130-00"),
        # the phone number with its separators or prefix changed
        ("ring 020-7946-0958 later", "020-7946-0958"),
        ("ring (020) 7946 0958 later", "020) 7946 0958"),
        ("ring 0044 20 7946 0958 later", "0044 20 7946 0958"),
        ("ring +44.20.7946.0959 later", "44.20.7946.0959"),
        # the booking code with a character changed or its dash gone
        ("code XK72PQ91", "XK72PQ91"),
        ("code XK72-PQ97", "XK72-PQ97"),
    ],
)
def test_near_copies_of_private_identifiers_are_flagged(text: str, copied: str) -> None:
    assert _flagged(text) == [copied]


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 we planned 3 trips and walked 12,000 steps.",
        "Meet at 10:30 on the 1st, room 214, bus 38, £1,200 a month.",
        "Call me on 0161 496 0000 about the 2019 accounts.",  # another number
        "My account is 7788 9900 1122 3344.",  # another account
        "The code is XK and the year 0532.",  # fragments too short to identify
        "The rent, the landlord, the phone and the booking were all fine.",
        "Between 1985 and 2026 prices rose 40%; 20 44 7946 people came.",
    ],
)
def test_ordinary_text_and_other_numbers_are_not_flagged(text: str) -> None:
    assert _flagged(text) == []


def test_digits_split_between_prefix_and_draft_are_refused() -> None:
    guard = EgressGuard(audit_log=AuditLog(), allowed_types=(Draft,))
    guard.set_private_texts([MEMORY])
    sent: list[bytes] = []
    # Neither half alone holds six digits of the account number; together they hold ten.
    payload = Draft(query="q", prefix="The account is 0532 0", draft="130 00, ok")
    with pytest.raises(PrivacyViolation, match="PRIVATE_TOKEN in <joined>"):
        guard.send(payload, "cloud", lambda data: sent.append(data) or b"{}")
    assert sent == []
    screened = guard.screen_text(payload.prefix + payload.draft)
    assert "0532" not in screened.safe_text and "130" not in screened.safe_text


def test_the_screen_keeps_a_near_copy_local() -> None:
    guard = EgressGuard(audit_log=AuditLog(), allowed_types=(Draft,))
    guard.set_private_texts([MEMORY])
    result = guard.screen_text("Sure, I'll pay DE89 3704 0044 0532 0130 on Friday.")
    assert result.safe_text == "Sure, I'll pay [PRIVATE_TOKEN_1] on Friday."


@pytest.mark.parametrize(
    ("text", "compact"),
    [
        ("DE89 3704 0044", ["de8937040044"]),
        ("call +44 (20) 7946-0958 now", ["442079460958"]),
        ("SKU-88213 and the year 2024", ["sku88213", "2024"]),
        ("plain words only", []),
        ("room 214, 12,000 steps", ["214", "12000"]),
    ],
)
def test_runs_join_digit_groups_and_identifier_parts(text: str, compact: list[str]) -> None:
    assert [r.compact for r in runs(text)] == compact


@pytest.mark.parametrize(
    ("out", "private", "near"),
    [
        ("0532013000", "de89370400440532013000", True),  # a stretch of it
        ("de893704004405320130", "de89370400440532013000", True),  # two dropped
        ("02079460958", "442079460958", True),  # trunk prefix instead of country code
        ("123457", "123456", False),  # 6 characters: exact only
        ("12345679", "12345678", True),  # 8 characters: one edit
        ("12345699", "12345678", True),  # six shared digits in a row
        ("12395679", "12345678", False),  # two edits apart, no six in a row
        ("2024", "de89370400440532013000", False),  # shorter than 6
        ("99370411", "de89370400440532013000", False),
    ],
)
def test_near_copy_rule(out: str, private: str, near: bool) -> None:
    assert is_near_copy(out, private) is near
